package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dk8s/dk8s/pkg/containers"
)

func assertNoControlPlane(t *testing.T, engine containers.Engine, dir string) {
	t.Helper()
	for _, n := range controlPlane {
		if _, err := engine.InspectContainer(context.Background(), n); !containers.IsNotFound(err) {
			t.Errorf("%s should not exist (err %v)", n, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "pki")); !os.IsNotExist(err) {
		t.Errorf("no PKI should have been made in %s (err %v)", dir, err)
	}
}

func TestConcurrentStarts(t *testing.T) {
	engine, _ := harness(t)
	c := newCluster(t)

	t.Run("a start that finds the directory locked refuses and changes nothing", func(t *testing.T) {
		os.MkdirAll(c.dir, 0o700)
		f, err := os.OpenFile(filepath.Join(c.dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			t.Fatal(err)
		}
		r := c.run("start", "--control-plane-only")
		if r.code == 0 || !strings.Contains(r.stderr, "another dk8s start is running") || !strings.Contains(r.stderr, "--wait") {
			t.Errorf("want a refusal that says how to wait:\n%s", r)
		}
		assertNoControlPlane(t, engine, c.dir)
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	})

	t.Run("two starts at once make one control plane", func(t *testing.T) {
		a, aErr := startDK8s(t, "start", "--control-plane-only", "--dir", c.dir, "--wait", "3m")
		b, bErr := startDK8s(t, "start", "--control-plane-only", "--dir", c.dir, "--wait", "3m")
		errA, errB := a.Wait(), b.Wait()
		if errA != nil || errB != nil {
			t.Fatalf("both starts should succeed, one after the other: %v, %v\n--- a\n%s--- b\n%s", errA, errB, aErr, bErr)
		}
		outs := aErr.String() + bErr.String()
		if n := len(controlPlane); strings.Count(outs, " created") != n || strings.Count(outs, " unchanged") != n {
			t.Errorf("one start should create every container and the other find them unchanged:\n%s", outs)
		}
		if !strings.Contains(outs, "another dk8s start is running; waiting") {
			t.Errorf("the second start should say it waits:\n%s", outs)
		}
		c.waitHealthy(time.Minute)
	})

	t.Run("another directory's start, stop and reset leave this cluster alone", func(t *testing.T) {
		other := t.TempDir()
		before := ids(t, engine)
		r := dk8s(t, nil, "start", "--dir", other)
		if r.code == 0 || !strings.Contains(r.stderr, "runs the control plane kept in "+c.dir) {
			t.Errorf("start --dir %s should refuse, naming %s:\n%s", other, c.dir, r)
		}
		if _, err := os.Stat(filepath.Join(other, "pki")); !os.IsNotExist(err) {
			t.Errorf("the refused start made a PKI in %s", other)
		}
		if r := dk8s(t, nil, "stop", "--dir", other); r.code == 0 || !strings.Contains(r.stderr, "pass --dir "+c.dir) {
			t.Errorf("stop of another directory should refuse:\n%s", r)
		}
		// Refused, not a no-op: its clean-up of the node (mounts under the
		// runtime's state) would reach this cluster's.
		if r := dk8s(t, nil, "reset", "--dir", other); r.code == 0 || strings.Contains(r.stderr, "removed") || !strings.Contains(r.stderr, "runs the cluster kept in "+c.dir) {
			t.Errorf("reset of another directory should be refused and remove nothing:\n%s", r)
		}
		if after := ids(t, engine); !equalMaps(before, after) {
			t.Errorf("containers changed: %v -> %v", before, after)
		}
		c.waitHealthy(time.Minute)
	})
}

func TestStartPreflight(t *testing.T) {
	engine, _ := harness(t)
	c := newCluster(t)

	t.Run("a port held by another process is named", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:10259")
		if err != nil {
			t.Fatalf("holding port 10259: %v", err)
		}
		defer l.Close()
		r := c.run("start")
		want := fmt.Sprintf("pid %d", os.Getpid())
		if r.code == 0 || !strings.Contains(r.stderr, "port 10259") || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "nothing was changed") {
			t.Errorf("want a failure naming port 10259 and %s:\n%s", want, r)
		}
		assertNoControlPlane(t, engine, c.dir)
	})

	t.Run("missing images are named with the command that fetches them", func(t *testing.T) {
		r := c.run("start", "--lock", "../../images.lock", "--kubernetes-version", "v1.35.3")
		if r.code == 0 || !strings.Contains(r.stderr, "images missing: registry.k8s.io/etcd:3.6.6-0") || !strings.Contains(r.stderr, "dk8s pull --mirror") {
			t.Errorf("want the missing images and the pull command:\n%s", r)
		}
		assertNoControlPlane(t, engine, c.dir)
	})

	t.Run("bad flags", func(t *testing.T) {
		badConfig := filepath.Join(t.TempDir(), "start.yaml")
		os.WriteFile(badConfig, []byte("extraArg:\n  kube-scheduler: {v: '2'}\n"), 0o644)
		for args, want := range map[string]string{
			"--config " + badConfig:          "line 1: field extraArg not found",
			"--extra-args kube-apiservr:v=2": `unknown component "kube-apiservr"`,
			"--extra-args v=2":               "must be COMPONENT:FLAG=VALUE",
			"--advertise-address 300.1.1.1":  "is not an IP address",
			"--service-cidr 10.96.0.0":       "service range",
		} {
			r := c.run(append([]string{"start"}, strings.Fields(args)...)...)
			if r.code == 0 || !strings.Contains(r.stderr, want) {
				t.Errorf("start %s: want %q:\n%s", args, want, r)
			}
		}
		assertNoControlPlane(t, engine, c.dir)
	})
}

func TestStartFailureShowsLogs(t *testing.T) {
	harness(t)
	c := newCluster(t)
	// An apiserver pointed at an etcd that is not there never gets ready.
	r := c.run("start", "--control-plane-only", "--timeout", "15s", "--extra-args", "kube-apiserver:etcd-servers=https://127.0.0.1:1")
	for _, want := range []string{"✓ etcd is healthy", "kube-apiserver did not become healthy", "its last log lines:", "127.0.0.1:1", "next: 'dk8s logs kube-apiserver'"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr should say %q:\n%s", want, r)
		}
	}
	if r.code == 0 {
		t.Error("start should fail")
	}
}

func TestStartRefusesFullDisk(t *testing.T) {
	engine, _ := harness(t)
	c := newCluster(t)
	// A small file system, as when /var fills up: etcd would stop taking
	// writes there, so start refuses before making anything.
	os.MkdirAll(c.dir, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", c.dir).CombinedOutput(); err != nil {
		t.Fatalf("mounting a small file system: %v\n%s", err, out)
	}
	defer exec.Command("umount", c.dir).Run()
	r := c.run("start")
	if r.code == 0 || !strings.Contains(r.stderr, "disk: "+c.dir+" has 64 MiB free") || !strings.Contains(r.stderr, "Free at least 1 GiB") {
		t.Errorf("want a refusal naming the free space:\n%s", r)
	}
	assertNoControlPlane(t, engine, c.dir)
}
