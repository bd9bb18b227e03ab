package host

import (
	"bufio"
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
func Install(src, dst string) (string, error) {
	if src == dst {
		return dst, nil
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	_, err = atomicfile.WriteIfChanged(dst, data, 0o755)
	return dst, err
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
