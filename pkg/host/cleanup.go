package host

import (
	"bufio"
	"context"
	"fmt"
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
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && ((self && fields[4] == dir) || strings.HasPrefix(fields[4], dir+"/")) {
			points = append(points, fields[4])
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && err != syscall.EINVAL && err != syscall.ENOENT {
			return fmt.Errorf("unmounting %s: %w", p, err)
		}
	}
	return nil
}
