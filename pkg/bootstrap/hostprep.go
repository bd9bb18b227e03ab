package bootstrap

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// ServiceLink is the device the service range is routed to on the host: a
// bridge with no ports, so a packet for a ClusterIP that kube-proxy has not
// programmed (at start, after a kube-proxy crash) is dropped on the host
// instead of following the default route out to whatever answers there.
// Programmed traffic is rewritten by kube-proxy's DNAT before it would
// reach the device, so Services work as before. (kube-proxy's IPVS mode
// keeps its own dummy device for the same reason; a bridge is used because
// many hosts' kernels, this project's test machines among them, lack the
// dummy module.)
const ServiceLink = "dk8s-svc"

// RuntimeCgroup is where the pod runtime moves itself before it starts,
// under every cgroup hierarchy: out of its supervising container's cgroup,
// so that the pods' shims it spawns are not killed with that container
// when the runtime crashes or is restarted (systemd's KillMode=process).
const RuntimeCgroup = "dk8s/containerd"

// HostExecOptions say what to prepare on the host before an agent starts.
type HostExecOptions struct {
	// Root is the host's root file system; "/" when already there (a
	// systemd unit).
	Root string
	// ServiceCIDR, when set, is routed to ServiceLink first.
	ServiceCIDR string
	// Cgroup, when set, is the cgroup the agent moves into first.
	Cgroup string
}

// EnsureServiceRoute keeps the service range on the host: ServiceLink
// exists and is up, and the range is routed to it.
func EnsureServiceRoute(cidr string) error {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return fmt.Errorf("service range %q: %w", cidr, err)
	}
	if _, err := net.InterfaceByName(ServiceLink); err != nil {
		if out, err := exec.Command("ip", "link", "add", ServiceLink, "type", "bridge").CombinedOutput(); err != nil {
			return fmt.Errorf("making %s for the service range: %v: %s", ServiceLink, err, strings.TrimSpace(string(out)))
		}
	}
	for _, args := range [][]string{{"link", "set", ServiceLink, "up"}, {"route", "replace", n.String(), "dev", ServiceLink}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("keeping the service range %s on the host (ip %s): %v: %s", n, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// removeServiceRoute undoes EnsureServiceRoute: the route goes with the
// device.
func removeServiceRoute() error {
	if _, err := net.InterfaceByName(ServiceLink); err != nil {
		return nil
	}
	if out, err := exec.Command("ip", "link", "delete", ServiceLink).CombinedOutput(); err != nil {
		return fmt.Errorf("deleting %s: %v: %s", ServiceLink, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// cgroupRoot is where the host's cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// cgroupDirs lists the directories of name under every hierarchy: the one
// unified tree on cgroup v2, one per controller mount on v1. Each is placed
// beside the host init's own cgroup (the root on most hosts; a machine
// whose init sits in a cgroup of its parent's keeps the runtime inside it).
func cgroupDirs(name string) []string {
	initCgroups := readInitCgroups()
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		return []string{filepath.Join(cgroupRoot, initCgroups[""], name)}
	}
	entries, _ := os.ReadDir(cgroupRoot)
	var dirs []string
	for _, e := range entries {
		h := filepath.Join(cgroupRoot, e.Name())
		if _, err := os.Stat(filepath.Join(h, "cgroup.procs")); err != nil || e.Name() == "unified" {
			continue // not a hierarchy, or v1's empty v2 tree
		}
		dirs = append(dirs, filepath.Join(h, initCgroups[e.Name()], name))
	}
	return dirs
}

// readInitCgroups maps each hierarchy, by the name of its mount under
// cgroupRoot ("memory", "cpu,cpuacct", "systemd"; "" for v2's), to the
// cgroup PID 1 is in.
func readInitCgroups() map[string]string {
	out := map[string]string{}
	data, err := os.ReadFile("/proc/1/cgroup")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		out[strings.TrimPrefix(f[1], "name=")] = f[2]
	}
	return out
}

// MoveToCgroup moves the calling process into name under every hierarchy,
// making it where needed. On v1 a new cpuset gets its parent's CPUs and
// memory nodes first, or no process could join it.
func MoveToCgroup(name string) error {
	dirs := cgroupDirs(name)
	if len(dirs) == 0 {
		return errors.New("no cgroup hierarchy under " + cgroupRoot)
	}
	pid := []byte(strconv.Itoa(os.Getpid()))
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("making cgroup %s: %w", d, err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if cur, err := os.ReadFile(filepath.Join(d, f)); err == nil && strings.TrimSpace(string(cur)) == "" {
				if err := inheritCpuset(d, f); err != nil {
					return err
				}
			}
		}
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), pid, 0o644); err != nil {
			return fmt.Errorf("moving into cgroup %s: %w", d, err)
		}
	}
	return nil
}

// inheritCpuset fills an empty cpuset file of dir and of each of its
// parents below the hierarchy's root with the value above it.
func inheritCpuset(dir, file string) error {
	parent := filepath.Dir(dir)
	v, err := os.ReadFile(filepath.Join(parent, file))
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(v)) == "" {
		if err := inheritCpuset(parent, file); err != nil {
			return err
		}
		if v, err = os.ReadFile(filepath.Join(parent, file)); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, file), v, 0o644)
}

// removeCgroups deletes the runtime's cgroups once nothing runs in them.
func removeCgroups(name string) {
	for _, d := range cgroupDirs(name) {
		os.Remove(d)
		os.Remove(filepath.Dir(d)) // dk8s/, when empty
	}
}
