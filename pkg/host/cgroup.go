package host

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// RuntimeCgroup is where the pod runtime moves itself before it starts,
// under every cgroup hierarchy: out of its supervising container's cgroup,
// so that the pods' shims it spawns are not killed with that container
// when the runtime crashes or is restarted (systemd's KillMode=process).
const RuntimeCgroup = "dk8s/containerd"

// cgroupRoot is where the host's cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// cgroupDirs lists the directories of name under every hierarchy of the
// host, each beside PID 1's own cgroup.
func cgroupDirs(name string) []string {
	data, _ := os.ReadFile("/proc/1/cgroup")
	return cgroupDirsUnder(cgroupRoot, parseCgroups(string(data)), name)
}

// cgroupDirsUnder lists the directories of name under every hierarchy
// mounted below root: the one unified tree on cgroup v2, one per controller
// mount on v1. Each is placed beside the host init's own cgroup, as init
// maps it (the root on most hosts; a machine whose init sits in a cgroup of
// its parent's keeps the runtime inside it).
func cgroupDirsUnder(root string, init map[string]string, name string) []string {
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		return []string{filepath.Join(root, init[""], name)}
	}
	entries, _ := os.ReadDir(root)
	var dirs []string
	for _, e := range entries {
		h := filepath.Join(root, e.Name())
		if _, err := os.Stat(filepath.Join(h, "cgroup.procs")); err != nil || e.Name() == "unified" {
			continue // not a hierarchy, or v1's empty v2 tree
		}
		dirs = append(dirs, filepath.Join(h, init[e.Name()], name))
	}
	return dirs
}

// parseCgroups maps each hierarchy of a /proc/PID/cgroup, by the name of
// its mount under cgroupRoot ("memory", "cpu,cpuacct", "systemd"; "" for
// v2's), to the process's cgroup in it.
func parseCgroups(data string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(data), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		out[strings.TrimPrefix(f[1], "name=")] = f[2]
	}
	return out
}

// MoveToCgroup moves the calling process into name under every hierarchy,
// making it where needed.
func MoveToCgroup(name string) error {
	dirs := cgroupDirs(name)
	if len(dirs) == 0 {
		return errors.New("no cgroup hierarchy under " + cgroupRoot)
	}
	return moveToCgroups(dirs, os.Getpid())
}

// moveToCgroups moves pid into each of dirs, making them where needed. On
// v1 a new cpuset gets its parent's CPUs and memory nodes first, or no
// process could join it.
func moveToCgroups(dirs []string, pid int) error {
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
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
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
