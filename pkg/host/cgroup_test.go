package host

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCgroups(t *testing.T) {
	got := parseCgroups("12:cpuset:/\n11:cpu,cpuacct:/init.scope\n1:name=systemd:/init.scope\n0::/init.scope\n")
	if got["cpuset"] != "/" || got["cpu,cpuacct"] != "/init.scope" || got["systemd"] != "/init.scope" || got[""] != "/init.scope" {
		t.Errorf("got %v", got)
	}
	if len(parseCgroups("")) != 0 {
		t.Error("no /proc/1/cgroup, no hierarchies")
	}
}

func mkfile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCgroupDirsUnder(t *testing.T) {
	v2 := t.TempDir()
	mkfile(t, filepath.Join(v2, "cgroup.controllers"), "cpu memory\n")
	got := cgroupDirsUnder(v2, map[string]string{"": "/machine.slice/box"}, RuntimeCgroup)
	if len(got) != 1 || got[0] != filepath.Join(v2, "machine.slice/box/dk8s/containerd") {
		t.Errorf("on v2 the one tree, beside init's cgroup: %q", got)
	}

	v1 := t.TempDir()
	for _, h := range []string{"cpuset", "memory", "systemd", "unified"} {
		mkfile(t, filepath.Join(v1, h, "cgroup.procs"), "")
	}
	os.MkdirAll(filepath.Join(v1, "cpu"), 0o755) // a symlink's place, not a hierarchy here
	got = cgroupDirsUnder(v1, map[string]string{"memory": "/", "systemd": "/init.scope"}, RuntimeCgroup)
	want := []string{
		filepath.Join(v1, "cpuset/dk8s/containerd"), filepath.Join(v1, "memory/dk8s/containerd"),
		filepath.Join(v1, "systemd/init.scope/dk8s/containerd"),
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("on v1 one per controller, not v1's unified tree:\n%q\nwant\n%q", got, want)
	}
}

func TestMoveToCgroups(t *testing.T) {
	root := t.TempDir()
	mkfile(t, filepath.Join(root, "cpuset/cpuset.cpus"), "0-3\n")
	mkfile(t, filepath.Join(root, "cpuset/cpuset.mems"), "0\n")
	// What the kernel shows in a new v1 cpuset: empty files.
	for _, d := range []string{"cpuset/dk8s", "cpuset/dk8s/containerd"} {
		mkfile(t, filepath.Join(root, d, "cpuset.cpus"), "\n")
		mkfile(t, filepath.Join(root, d, "cpuset.mems"), "")
	}
	dirs := []string{filepath.Join(root, "cpuset/dk8s/containerd"), filepath.Join(root, "memory/dk8s/containerd")}
	if err := moveToCgroups(dirs, 4242); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"cpuset/dk8s/cpuset.cpus", "cpuset/dk8s/containerd/cpuset.cpus"} {
		if data, _ := os.ReadFile(filepath.Join(root, f)); string(data) != "0-3\n" {
			t.Errorf("%s should inherit the CPUs above it: %q", f, data)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(root, "cpuset/dk8s/containerd/cpuset.mems")); string(data) != "0\n" {
		t.Errorf("the memory nodes too: %q", data)
	}
	for _, d := range dirs {
		if data, _ := os.ReadFile(filepath.Join(d, "cgroup.procs")); string(data) != "4242" {
			t.Errorf("%s should hold the process: %q", d, data)
		}
	}
}
