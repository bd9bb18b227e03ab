package host

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/dk8s/dk8s/internal/atomicfile"
)

// BinaryVersion is the version a host binary reports through r, e.g.
// containerd's ("containerd github.com/containerd/containerd v1.7.24 ..."):
// the third word of its --version, or "unknown".
func BinaryVersion(ctx context.Context, r Runner, path string) string {
	out, _ := r.Run(ctx, nil, path, "--version")
	f := strings.Fields(string(out))
	if len(f) >= 3 {
		return f[2]
	}
	return "unknown"
}

// Install copies a host binary to dst in the cluster directory, where the
// node's agents run it from, unless it is there already; it returns dst.
// Both files are streamed, never held whole: a kubelet is about 80 MB, and
// a rerun of start on a 1 GB machine must not take that (twice) from the
// cluster it is checking.
func Install(src, dst string) (string, error) {
	if src == dst {
		return dst, nil
	}
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	same, err := sameContent(in, dst)
	if err != nil {
		return "", err
	}
	if same {
		if st, err := os.Stat(dst); err != nil || st.Mode().Perm() == 0o755 {
			return dst, err
		}
		return dst, os.Chmod(dst, 0o755)
	}
	if _, err := in.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	out, err := atomicfile.Create(dst, 0o755)
	if err != nil {
		return "", err
	}
	defer out.Discard()
	if _, err := io.Copy(out, in); err != nil {
		return "", fmt.Errorf("installing %s as %s: %w", src, dst, err)
	}
	return dst, out.Commit()
}

// sameContent tells whether the file at path holds what in holds, reading
// both a chunk at a time.
func sameContent(in *os.File, path string) (bool, error) {
	other, err := os.Open(path)
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer other.Close()
	a, errA := in.Stat()
	b, errB := other.Stat()
	if errA != nil || errB != nil || a.Size() != b.Size() {
		return false, nil
	}
	bufA, bufB := make([]byte, 1<<20), make([]byte, 1<<20)
	for {
		n, errA := io.ReadFull(in, bufA)
		m, errB := io.ReadFull(other, bufB)
		if n != m || !bytes.Equal(bufA[:n], bufB[:m]) {
			return false, nil
		}
		if errA == io.EOF || errA == io.ErrUnexpectedEOF {
			return errB == io.EOF || errB == io.ErrUnexpectedEOF, nil
		}
		if errA != nil {
			return false, errA
		}
		if errB != nil {
			return false, nil
		}
	}
}

// EnsureSharedRoot makes / a shared mount, as systemd does at boot, so that
// mounts kubelet makes inside its container reach the host and pods.
func EnsureSharedRoot() error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	shared := rootIsShared(f)
	f.Close()
	if shared {
		return nil
	}
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_SHARED, ""); err != nil {
		return fmt.Errorf("making / a shared mount (as systemd does) for kubelet's volume mounts: %w", err)
	}
	return nil
}

// rootIsShared tells from a mountinfo whether / is in a peer group.
func rootIsShared(mountinfo io.Reader) bool {
	sc := bufio.NewScanner(mountinfo)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 6 && fields[4] == "/" {
			return strings.Contains(strings.Join(fields[6:], " "), "shared:")
		}
	}
	return false
}
