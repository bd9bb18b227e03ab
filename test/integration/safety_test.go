package integration

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/dk8s/dk8s/pkg/containers"
)

// reset --purge deletes only a directory dk8s made and marked; start
// writes nothing into a directory of other files.
func TestPurgeAndStartOnlyTheirOwnDirectory(t *testing.T) {
	harness(t)
	base := t.TempDir()
	stranger := filepath.Join(base, "stranger")
	os.MkdirAll(stranger, 0o755)
	os.WriteFile(filepath.Join(stranger, "notes.txt"), []byte("mine"), 0o600)

	for _, dir := range []string{stranger, "//", "/.", "/etc", filepath.Join(base, "never")} {
		r := dk8s(t, nil, "reset", "--purge", "--yes", "--dir", dir)
		if dir == filepath.Join(base, "never") {
			// Nothing there: nothing to delete, and nothing made either.
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("reset --purge made %s", dir)
			}
			continue
		}
		if r.code == 0 {
			t.Errorf("reset --purge --dir %s should be refused:\n%s", dir, r)
		}
	}
	r := dk8s(t, nil, "reset", "--purge", "--yes", "--dir", stranger)
	if !strings.Contains(r.stderr, "no dk8s-cluster.yaml") || !strings.Contains(r.stderr, "rm -rf "+stranger) {
		t.Errorf("the refusal should say why and what to delete by hand:\n%s", r)
	}
	if data, err := os.ReadFile(filepath.Join(stranger, "notes.txt")); err != nil || string(data) != "mine" {
		t.Fatalf("the directory's file should be intact: %q %v", data, err)
	}

	// A relative --dir is the directory under the current one, never a
	// Docker named volume.
	cmd := exec.Command(dk8sBin, "reset", "--purge", "--yes", "--dir", "stranger")
	cmd.Dir, cmd.Env = base, append(os.Environ(), "DK8S_LOCK="+testLock)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "refusing to purge "+stranger) {
		t.Errorf("a relative --dir should resolve to %s and be refused: %v\n%s", stranger, err, out)
	}

	r = dk8s(t, nil, "start", "--control-plane-only", "--dir", stranger)
	if r.code == 0 || !strings.Contains(r.stderr, "not made by dk8s") {
		t.Errorf("start into a directory of other files should be refused:\n%s", r)
	}
	entries, _ := os.ReadDir(stranger)
	if len(entries) != 1 {
		t.Errorf("the refused start wrote into %s: %v", stranger, entries)
	}
}

// The whole node is checked before anything starts: a port kubelet needs,
// held by another process, stops start before the control plane is made.
func TestStartChecksTheNodeFirst(t *testing.T) {
	engine, _ := harness(t)
	c := newCluster(t)
	l, err := net.Listen("tcp", "127.0.0.1:10250")
	if err != nil {
		t.Fatalf("holding kubelet's port: %v", err)
	}
	defer l.Close()
	r := c.run("start", "--timeout", "1m", "--mirror", pathMirror)
	if r.code == 0 || !strings.Contains(r.stderr, "port 10250") || !strings.Contains(r.stderr, "kubelet needs it") {
		t.Errorf("start should refuse, naming kubelet's port:\n%s", r)
	}
	for _, comp := range []string{"dk8s-etcd", "dk8s-apiserver", "dk8s-containerd", "dk8s-kubelet"} {
		if _, err := engine.InspectContainer(context.Background(), comp); !containers.IsNotFound(err) {
			t.Errorf("%s should not exist after a refused start (err %v)", comp, err)
		}
	}
}

// A host without a default route (an air-gapped site) runs every command
// that does not need one, and start with --advertise-address.
func TestNoDefaultRoute(t *testing.T) {
	harness(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatal("unshare (util-linux) is needed to make a network namespace without a route")
	}
	// A network namespace of the test's own, with only a loopback and no
	// route at all; Docker's socket is a file, so dk8s reaches the daemon.
	run := func(args ...string) result {
		t.Helper()
		cmd := exec.Command("unshare", append([]string{"--net", "--", dk8sBin}, args...)...)
		cmd.Env = append(os.Environ(), "DK8S_LOCK="+testLock)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		r := result{stdout: out.String(), stderr: errb.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return r
	}
	dir := filepath.Join(t.TempDir(), "cluster")
	if r := run("ps", "--dir", dir); strings.Contains(r.stderr, "default route") || !strings.Contains(r.stdout, "COMPONENT") {
		t.Errorf("ps should not need a default route:\n%s", r)
	}
	if r := run("reset", "--dir", dir); r.code != 0 {
		t.Errorf("reset should not need a default route:\n%s", r)
	}
	r := run("start", "--control-plane-only", "--dir", dir)
	if r.code == 0 || !strings.Contains(r.stderr, "no default route") || !strings.Contains(r.stderr, "--advertise-address") {
		t.Errorf("start with no route and no --advertise-address should say to pass one:\n%s", r)
	}
	// With the address given, start gets past it to its host checks: a
	// 64 MiB tmpfs as --dir fails the disk check, before anything is made.
	small := filepath.Join(t.TempDir(), "small")
	os.MkdirAll(small, 0o700)
	if err := syscall.Mount("tmpfs", small, "tmpfs", 0, "size=64m"); err != nil {
		t.Fatalf("mounting a small tmpfs: %v", err)
	}
	defer syscall.Unmount(small, syscall.MNT_DETACH)
	r = run("start", "--control-plane-only", "--advertise-address", "10.1.2.3", "--dir", small)
	if strings.Contains(r.stderr, "default route") || !strings.Contains(r.stderr, "disk") {
		t.Errorf("start --advertise-address should not look for a route, and stop at the disk check:\n%s", r)
	}
}

// The service range is routed to the host's own device: a range that
// overlaps one of the host's routes (a VPN's, say) is refused before
// anything is made, rather than taking that network's traffic.
func TestStartRefusesAServiceRangeInUse(t *testing.T) {
	engine, _ := harness(t)
	c := newCluster(t)
	// A blackhole route sends nothing anywhere.
	if out, err := exec.Command("ip", "route", "add", "blackhole", "10.100.5.0/24").CombinedOutput(); err != nil {
		t.Fatalf("adding a route: %v: %s", err, out)
	}
	defer exec.Command("ip", "route", "del", "blackhole", "10.100.5.0/24").Run()
	r := c.run("start", "--timeout", "1m", "--mirror", pathMirror, "--kubelet-binary", filepath.Join(filepath.Dir(testLock), "kubelet"))
	if r.code == 0 || !strings.Contains(r.stderr, "service range: 10.96.0.0/12 overlaps the route blackhole 10.100.5.0/24") || !strings.Contains(r.stderr, "--service-cidr") {
		t.Errorf("start should refuse the overlapping range, naming the route and the flag:\n%s", r)
	}
	for _, comp := range []string{"dk8s-etcd", "dk8s-containerd"} {
		if _, err := engine.InspectContainer(context.Background(), comp); !containers.IsNotFound(err) {
			t.Errorf("%s should not exist after a refused start (err %v)", comp, err)
		}
	}
	if out, _ := exec.Command("ip", "route", "show", "10.100.5.0/24").Output(); !strings.Contains(string(out), "blackhole") {
		t.Errorf("the host's route should be untouched: %q", out)
	}
}

// reset --purge never deletes through a mount: a bind under a cluster
// directory, at a path with a space (which mountinfo escapes as \040),
// keeps what its source holds. A directory of the cluster (a node's, whose
// mounts purge detaches) and one of a control plane alone (which refuses,
// naming the mount).
func TestPurgeNeverDeletesThroughAMount(t *testing.T) {
	harness(t)
	for _, node := range []bool{true, false} {
		base := t.TempDir()
		dir, source := filepath.Join(base, "cluster"), filepath.Join(base, "precious")
		inside := filepath.Join(dir, "my data", "mnt")
		for _, d := range []string{inside, source} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if node {
			os.MkdirAll(filepath.Join(dir, "kubelet"), 0o755)
		}
		os.WriteFile(filepath.Join(dir, "dk8s-cluster.yaml"), []byte("apiVersion: dk8s.io/v1alpha1\nkind: Cluster\nname: dk8s\n"), 0o600)
		os.WriteFile(filepath.Join(source, "keep.txt"), []byte("mine"), 0o600)
		if out, err := exec.Command("mount", "--bind", source, inside).CombinedOutput(); err != nil {
			t.Fatalf("bind mount: %v\n%s", err, out)
		}
		t.Cleanup(func() { syscall.Unmount(inside, syscall.MNT_DETACH) })

		r := dk8s(t, nil, "reset", "--purge", "--yes", "--dir", dir)
		if data, err := os.ReadFile(filepath.Join(source, "keep.txt")); err != nil || string(data) != "mine" {
			t.Fatalf("node=%t: purge deleted through the bind mount at %q: %q %v\n%s", node, inside, data, err, r)
		}
		if node {
			if r.code != 0 {
				t.Errorf("a node's purge detaches the mounts below its directory, then deletes it:\n%s", r)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("the purged directory is still there (%v):\n%s", err, r)
			}
			continue
		}
		if r.code == 0 || !strings.Contains(r.stderr, inside) || !strings.Contains(r.stderr, "nothing was deleted") {
			t.Errorf("a purge that meets a mount should refuse and name it:\n%s", r)
		}
		if _, err := os.Stat(filepath.Join(dir, "dk8s-cluster.yaml")); err != nil {
			t.Errorf("the refused purge deleted the cluster's files: %v", err)
		}
	}
}
