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
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// The mode is set before any byte is written: a key is never readable
	// by others, not even for a moment.
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	// Without the sync a crash after the rename can leave path empty: the
	// rename may reach the disk before the data does.
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
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
