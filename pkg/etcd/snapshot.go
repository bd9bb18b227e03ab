package etcd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// SnapshotInfo is a snapshot file.
type SnapshotInfo struct {
	Path   string    `json:"path"`
	Size   int64     `json:"size"`
	SHA256 string    `json:"sha256,omitempty"`
	Time   time.Time `json:"time"`
	// Scheduled marks a file the snapshot schedule took (and may prune);
	// every other is the user's and is never deleted.
	Scheduled bool `json:"scheduled"`
	// Version is the etcd version that wrote it, when it said.
	Version string `json:"version,omitempty"`
}

// SumSuffix is what a snapshot's sum file adds to its name. The sum file
// reads as sha256sum writes it, so 'sha256sum -c FILE.sha256' checks it in
// its directory.
const SumSuffix = ".sha256"

// Save streams a snapshot of etcd into path: into a temporary file beside
// it first (mode 0600: a snapshot holds every Secret of the cluster),
// synced, then linked in under its name, which an existing file keeps;
// then its sum file. A failure leaves no file behind.
func (c *Client) Save(ctx context.Context, path string) (SnapshotInfo, error) {
	if _, err := os.Lstat(path); err == nil {
		return SnapshotInfo{}, fmt.Errorf("%s exists: dk8s never overwrites a snapshot; name another file", path)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".part-*")
	if err != nil {
		return SnapshotInfo{}, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := tmp.Chmod(0o600); err != nil {
		return SnapshotInfo{}, err
	}
	resp, err := c.api.SnapshotWithVersion(ctx)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("asking etcd for a snapshot: %w", err)
	}
	defer resp.Snapshot.Close()
	sum := sha256.New()
	size, err := io.Copy(io.MultiWriter(tmp, sum), resp.Snapshot)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("reading etcd's snapshot: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return SnapshotInfo{}, err
	}
	if err := tmp.Close(); err != nil {
		return SnapshotInfo{}, err
	}
	if err := checkEmbeddedSum(tmp.Name()); err != nil {
		return SnapshotInfo{}, fmt.Errorf("etcd's snapshot: %w", err)
	}
	// A link, not a rename: it fails when path appeared meanwhile.
	if err := os.Link(tmp.Name(), path); err != nil {
		return SnapshotInfo{}, fmt.Errorf("putting the snapshot in place: %w", err)
	}
	info := SnapshotInfo{Path: path, Size: size, SHA256: hex.EncodeToString(sum.Sum(nil)), Time: time.Now().UTC(), Version: resp.Version}
	info.Scheduled = IsScheduled(filepath.Base(path))
	if err := writeSum(path, info.SHA256); err != nil {
		os.Remove(path)
		return SnapshotInfo{}, err
	}
	return info, syncDir(dir)
}

func writeSum(path, sum string) error {
	f, err := os.OpenFile(path+SumSuffix, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(f, "%s  %s\n", sum, filepath.Base(path)); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ErrMismatch is wrapped by Verify's error when a snapshot's content is
// not what its sums say: changed or cut short since it was saved.
var ErrMismatch = errors.New("the snapshot does not match its checksum")

// Verify checks the snapshot at path before anything is restored from it:
// against its sum file when there is one, and against the sha256 etcd
// appends to every snapshot it streams. It reads the file once.
func Verify(path string) (SnapshotInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		return SnapshotInfo{}, err
	}
	if !st.Mode().IsRegular() {
		return SnapshotInfo{}, fmt.Errorf("%s is not a file", path)
	}
	info := SnapshotInfo{Path: path, Size: st.Size(), Time: snapshotTime(filepath.Base(path), st.ModTime()), Scheduled: IsScheduled(filepath.Base(path))}
	want, err := readSum(path + SumSuffix)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return info, err
	}
	f, err := os.Open(path)
	if err != nil {
		return info, err
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return info, err
	}
	info.SHA256 = hex.EncodeToString(sum.Sum(nil))
	if want != "" && want != info.SHA256 {
		return info, fmt.Errorf("%s: %w: its sha256 is %s, %s%s says %s", path, ErrMismatch, info.SHA256, filepath.Base(path), SumSuffix, want)
	}
	if err := checkEmbeddedSum(path); err != nil {
		return info, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}

// readSum reads a sum file as sha256sum writes it; "" and an error wrapping
// os.ErrNotExist when there is none.
func readSum(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 || len(fields[0]) != sha256.Size*2 {
		return "", fmt.Errorf("%s is not a sha256sum line", path)
	}
	return strings.ToLower(fields[0]), nil
}

// checkEmbeddedSum checks the sha256 etcd appends to a snapshot it streams
// (the last 32 bytes, after a database of whole 512-byte pages), as etcdutl
// does before it restores one. A file without one is refused: it is no
// snapshot of etcd's API, and restoring it unchecked is what a sum is for.
func checkEmbeddedSum(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if size < sha256.Size || size%512 != sha256.Size {
		return fmt.Errorf("%w: %d bytes is not a database and etcd's sha256 of it (was it cut short?)", ErrMismatch, size)
	}
	h := sha256.New()
	if _, err := io.CopyN(h, f, size-sha256.Size); err != nil {
		return err
	}
	tail := make([]byte, sha256.Size)
	if _, err := io.ReadFull(f, tail); err != nil {
		return err
	}
	if !bytes.Equal(h.Sum(nil), tail) {
		return fmt.Errorf("%w: the sha256 etcd wrote at its end does not match its content", ErrMismatch)
	}
	return nil
}
