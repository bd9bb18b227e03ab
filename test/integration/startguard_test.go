package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
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

// TestStartStoppedAtItsWaitFinishesOnARerun: a start whose wait ends
// before the apiserver answers, as on a slow machine, leaves etcd and the
// apiserver running under Docker without the rest of the cluster. Its
// error says to run it again; doctor names that state; the rerun ends with
// the whole cluster.
func TestStartStoppedAtItsWaitFinishesOnARerun(t *testing.T) {
	harness(t)
	c := newCluster(t)
	c.node, c.nodeArgs = true, []string{"--kubelet-binary", filepath.Join(filepath.Dir(testLock), "kubelet")}
	t.Cleanup(func() {
		c.purge()
		assertNodeCleanedUp(t, c)
	})

	// Two seconds: no apiserver here answers its readiness check that soon.
	r := c.run(append([]string{"start", "--timeout", "2s", "--mirror", pathMirror}, c.nodeArgs...)...)
	if r.code == 0 {
		t.Fatalf("a start given 2s per component should stop at its wait:\n%s", r)
	}
	for _, want := range []string{"did not become healthy", "Run the same dk8s start again to finish", "--timeout"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the stopped start should say %q:\n%s", want, r)
		}
	}
	if !strings.Contains(r.stderr, "kube-apiserver did not become healthy") && !strings.Contains(r.stderr, "etcd did not become healthy") {
		t.Errorf("the stopped start should name the component it stopped at:\n%s", r)
	}

	// Docker brings the apiserver up by itself; the admin is not bound.
	insecure := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if !waitFor(3*time.Minute, func() bool {
		resp, err := insecure.Get("https://127.0.0.1:6443/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatal("the apiserver the stopped start made did not become ready by itself")
	}
	if out, err := c.kubectl("get", "nodes"); err == nil || !strings.Contains(out, "forbidden") {
		t.Errorf("before the rerun, the admin should not be bound yet: %v\n%s", err, out)
	}
	d := c.run("doctor")
	if d.code == 0 || !strings.Contains(d.stdout+d.stderr, "the admin is not bound to cluster-admin yet") || !strings.Contains(d.stdout+d.stderr, "run the same 'dk8s start' again") {
		t.Errorf("doctor should name the unfinished start and say to rerun it:\n%s", d)
	}

	r = c.start()
	if !strings.Contains(r.stderr, "Single-node cluster ready") {
		t.Errorf("the rerun should finish the cluster:\n%s", r)
	}
	ps := c.waitHealthy(time.Minute)
	for _, comp := range []string{"kube-controller-manager", "kube-scheduler", "kubelet"} {
		if !strings.Contains(lineWith(ps.stdout, comp+" "), "healthy") {
			t.Errorf("after the rerun, ps should show %s healthy:\n%s", comp, ps.stdout)
		}
	}
	host, _ := os.Hostname()
	if out := c.mustKubectl("get", "node", strings.ToLower(host), "--no-headers"); !strings.Contains(out, " Ready ") {
		t.Errorf("after the rerun the node should be Ready:\n%s", out)
	}
	if d := c.run("doctor"); strings.Contains(d.stdout+d.stderr, "not bound") {
		t.Errorf("after the rerun, doctor should no longer name the admin:\n%s", d)
	}
}
