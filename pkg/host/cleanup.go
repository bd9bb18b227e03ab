package host

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Cleanup undoes what running pods left on the host once the runtime and
// kubelet of the cluster kept in dir are gone: the mounts under the
// kubelet's directory (always: they are runtime state, and a removed
// kubelet cannot clean them), and with purge also the CNI bridge and its
// address records, flannel's device and lease, the iptables chains of
// kube-proxy, flannel and dk8s's CNI network (and its rules for podCIDR), the service range's device, the
// runtime's cgroups and its state directory. Commands run through r.
func Cleanup(ctx context.Context, r Runner, dir, podCIDR string, purge bool) error {
	if _, err := os.Stat(filepath.Join(dir, "kubelet")); os.IsNotExist(err) {
		return nil // never a node
	}
	for _, d := range []string{filepath.Join(dir, "kubelet"), RuntimeState} {
		if err := UnmountUnder(d); err != nil {
			return err
		}
	}
	if !purge {
		return nil
	}
	// Below dir, not dir itself: a cluster directory on a disk of its own
	// stays mounted, so its purge empties that disk.
	if err := unmountBelow(dir); err != nil {
		return err
	}
	var errs []string
	// The pods' bridge, and flannel's VXLAN device (flanneld runs as a pod,
	// so it is gone with them and cannot remove its own).
	for _, link := range []string{"dk8s0", "flannel.1"} {
		if _, err := os.Stat("/sys/class/net/" + link); err == nil {
			if _, err := r.Run(ctx, nil, "ip", "link", "delete", link); err != nil {
				errs = append(errs, fmt.Sprintf("deleting %s: %v", link, err))
			}
		}
	}
	for _, d := range []string{"/var/lib/cni/networks/dk8s", RuntimeState, filepath.Dir(FlannelSubnetFile)} {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if matches, _ := filepath.Glob("/var/lib/cni/results/dk8s-*"); len(matches) > 0 {
		for _, m := range matches {
			os.Remove(m)
		}
	}
	if err := removeChains(ctx, r, podCIDR); err != nil {
		errs = append(errs, err.Error())
	}
	if err := removeServiceRoute(ctx, r); err != nil {
		errs = append(errs, err.Error())
	}
	removeCgroups(RuntimeCgroup)
	if len(errs) > 0 {
		return fmt.Errorf("cleaning up the node: %s", strings.Join(errs, "; "))
	}
	return nil
}

func unmountBelow(dir string) error { return unmount(dir, false) }

// UnmountUnder detaches every mount at or below dir, deepest first.
func UnmountUnder(dir string) error { return unmount(dir, true) }

func unmount(dir string, self bool) error {
	points, err := mountsUnder(dir, self)
	if err != nil {
		return err
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && err != syscall.EINVAL && err != syscall.ENOENT {
			return fmt.Errorf("unmounting %s: %w", p, err)
		}
	}
	return nil
}

// mountsUnder are this mount namespace's mount points below dir (and dir
// itself with self).
func mountsUnder(dir string, self bool) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMountsUnder(f, filepath.Clean(dir), self)
}

// parseMountsUnder reads a mountinfo for the mount points below dir.
func parseMountsUnder(mountinfo io.Reader, dir string, self bool) ([]string, error) {
	var points []string
	sc := bufio.NewScanner(mountinfo)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) <= 4 {
			continue
		}
		p := unescapeMountPath(fields[4])
		if (self && p == dir) || strings.HasPrefix(p, dir+"/") || dir == "/" && p != "/" {
			points = append(points, p)
		}
	}
	return points, sc.Err()
}

// unescapeMountPath undoes the kernel's escapes in a mountinfo path: a
// space, tab, newline or backslash is written as its three octal digits
// after a backslash (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// MountedError is a deletion refused because something is mounted below
// the directory to delete: deleting through it would delete what another
// file system (or a bind of another directory) holds.
type MountedError struct {
	Dir    string
	Mounts []string
	// Midway is a mount met while deleting, which mountinfo did not show
	// (another device below the directory): what came before it is gone.
	Midway bool
}

func (e *MountedError) Error() string {
	done := "nothing was deleted"
	if e.Midway {
		done = "the deletion stopped there, and nothing below it was touched"
	}
	return fmt.Sprintf("%s has %s mounted below it; dk8s never deletes through a mount: %s. Unmount it (umount %q) and run this again",
		e.Dir, strings.Join(e.Mounts, ", "), done, e.Mounts[0])
}

// RemoveContents deletes everything below dir, as rm -r --one-file-system
// would: it refuses before deleting anything when a mount point is below
// dir, and stops at any directory of another file system it meets.
func RemoveContents(dir string) error {
	dir = filepath.Clean(dir)
	points, err := mountsUnder(dir, false)
	if err != nil {
		return err
	}
	if len(points) > 0 {
		sort.Strings(points)
		return &MountedError{Dir: dir, Mounts: points}
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	return removeBelow(dir, st.Sys().(*syscall.Stat_t).Dev, dir)
}

// removeBelow deletes what is in dir, a directory on device dev, refusing
// to go into a directory on another.
func removeBelow(dir string, dev uint64, top string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := removeOnDevice(filepath.Join(dir, e.Name()), dev, top); err != nil {
			return err
		}
	}
	return nil
}

func removeOnDevice(path string, dev uint64, top string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return os.Remove(path)
	}
	if d := st.Sys().(*syscall.Stat_t).Dev; d != dev {
		return &MountedError{Dir: top, Mounts: []string{path}, Midway: true}
	}
	if err := removeBelow(path, dev, top); err != nil {
		return err
	}
	return os.Remove(path)
}
