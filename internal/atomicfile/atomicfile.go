package atomicfile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces path with data, with mode set even on a file that existed
// with another. A missing directory is made 0700: dk8s's directories hold
// keys. The temporary file is made beside path, so that the rename never
// crosses file systems, and is removed on every failure.
func Write(path string, data []byte, mode os.FileMode) (err error) {
	p, err := Create(path, mode)
	if err != nil {
		return err
	}
	defer p.Discard()
	if _, err := p.Write(data); err != nil {
		return err
	}
	return p.Commit()
}

// Pending is a file being written that replaces path only when committed:
// for content streamed in and checked before it may be kept, such as a
// downloaded binary held against its pinned sum.
type Pending struct {
	*os.File
	path string
	done bool
}

// Create starts the replacement of path: a temporary file beside it, mode
// set before any byte is written (a key is never readable by others, not
// even for a moment). A missing directory is made 0700. The caller writes
// to it, then calls Commit, or Discard to leave path as it was; a deferred
// Discard after a Commit does nothing.
func Create(path string, mode os.FileMode) (*Pending, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, err
	}
	return &Pending{File: tmp, path: path}, nil
}

// Commit puts what was written in place of path.
func (p *Pending) Commit() error {
	if p.done {
		return fmt.Errorf("%s: already committed or discarded", p.path)
	}
	// Without the sync a crash after the rename can leave path empty: the
	// rename may reach the disk before the data does.
	if err := p.Sync(); err != nil {
		p.Discard()
		return err
	}
	if err := p.Close(); err != nil {
		p.Discard()
		return err
	}
	if err := os.Rename(p.Name(), p.path); err != nil {
		p.Discard()
		return err
	}
	p.done = true
	return syncDir(filepath.Dir(p.path))
}

// Discard removes the temporary file, leaving path untouched.
func (p *Pending) Discard() {
	if p.done {
		return
	}
	p.done = true
	p.Close()
	os.Remove(p.Name())
}

// syncDir flushes dir's entries, so that a rename in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// WriteIfChanged writes data to path unless path already holds exactly
// data, and tells whether it wrote. An unchanged file keeps its modification
// time (so that nothing watching it reloads for nothing) but is still given
// mode's permission bits.
func WriteIfChanged(path string, data []byte, mode os.FileMode) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		info, err := os.Stat(path)
		if err != nil {
			return false, err
		}
		if info.Mode().Perm() != mode.Perm() {
			return false, os.Chmod(path, mode)
		}
		return false, nil
	}
	if err := Write(path, data, mode); err != nil {
		return false, err
	}
	return true, nil
}
