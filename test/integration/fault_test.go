package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestFaultMirrorDiesMidPull stops a mirror in the middle of a pull: the
// images not yet pulled come from the next mirror, and the pull succeeds.
func TestFaultMirrorDiesMidPull(t *testing.T) {
	engine, rel := harness(t)
	clean(t, engine, rel)
	// A fourth registry serving the flat mirror's storage, to be killed.
	cfg := filepath.Join(t.TempDir(), "config.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:5004}\n",
		filepath.Join(filepath.Dir(testLock), "registry-5001", "data"))), 0o644)
	reg := exec.Command("docker-registry", "serve", cfg)
	if err := reg.Start(); err != nil {
		t.Fatal(err)
	}
	defer reg.Process.Kill()
	if _, err := get("http://127.0.0.1:5004/v2/", 10*time.Second); err != nil {
		t.Fatalf("the extra registry did not start: %v", err)
	}

	pull, stderr := startDK8s(t, "pull", "--parallel", "1", "--mirror", "127.0.0.1:5004/google_containers,"+flatMirror)
	if !waitFor(2*time.Minute, func() bool { return strings.Contains(stderr.String(), "done from 127.0.0.1:5004") }) {
		pull.Process.Kill()
		t.Fatalf("nothing came from the mirror that is to die:\n%s", stderr)
	}
	reg.Process.Kill()
	reg.Wait()
	if err := pull.Wait(); err != nil {
		t.Fatalf("the pull should finish from the next mirror: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr.String(), "done from "+flatMirror) {
		t.Errorf("some images should come from the next mirror:\n%s", stderr)
	}
	assertComplete(t, engine, rel)
}

// TestFaultEtcdRemovedByHand: `docker rm -f dk8s-etcd` takes the cluster
// down; ps says so; start brings it back with the data, which lives on the
// host.
func TestFaultEtcdRemovedByHand(t *testing.T) {
	harness(t)
	c := newCluster(t)
	c.start()
	c.writeMarker("before-rm")
	if out, err := exec.Command("docker", "rm", "-f", "dk8s-etcd").CombinedOutput(); err != nil {
		t.Fatalf("docker rm: %v %s", err, out)
	}
	ps := c.run("ps")
	if ps.code == 0 || !strings.Contains(lineWith(ps.stdout, "etcd "), "absent") {
		t.Errorf("ps should show etcd absent and exit non-zero:\n%s", ps)
	}
	r := c.start()
	if !strings.Contains(r.stderr, "dk8s-etcd created") {
		t.Errorf("start should recreate etcd:\n%s", r)
	}
	c.assertMarker("before-rm")
}

// TestFaultInterruptedStart: Ctrl-C in the middle of start, then a rerun
// finishes the job.
func TestFaultInterruptedStart(t *testing.T) {
	harness(t)
	c := newCluster(t)
	cmd, stderr := startDK8s(t, "start", "--control-plane-only", "--dir", c.dir)
	if !waitFor(2*time.Minute, func() bool { return strings.Contains(stderr.String(), "✓ etcd is healthy") }) {
		cmd.Process.Kill()
		t.Fatalf("etcd never came up:\n%s", stderr)
	}
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("an interrupted start should exit 130, got %d:\n%s", code, stderr)
	}
	if strings.Contains(stderr.String(), "✓ kube-scheduler is healthy") {
		t.Fatalf("start finished before the interrupt; nothing was tested:\n%s", stderr)
	}
	c.start()
	c.waitHealthy(time.Minute)
	c.writeMarker("after-rerun")
	c.assertMarker("after-rerun")
}

// TestFaultDiskFull fills the file system that holds etcd's data: writes
// fail while it is full, and once space is freed the cluster recovers by
// itself with the data written before.
func TestFaultDiskFull(t *testing.T) {
	harness(t)
	c := newCluster(t)
	os.MkdirAll(c.dir, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1100m", "tmpfs", c.dir).CombinedOutput(); err != nil {
		t.Fatalf("mounting a small file system: %v\n%s", err, out)
	}
	// Cleanups run last-registered first: purge, then unmount, even if the
	// purge fails.
	t.Cleanup(func() { exec.Command("umount", c.dir).Run() })
	t.Cleanup(c.purge)
	c.start()
	c.writeMarker("before-full")

	filler := filepath.Join(c.dir, "filler")
	exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=1M").Run() // until ENOSPC
	var werr error
	big := strings.Repeat("x", 512*1024)
	waitFor(time.Minute, func() bool {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("during-full-%d", time.Now().UnixNano())}, Data: map[string]string{"big": big}}
		_, werr = c.client().CoreV1().ConfigMaps("default").Create(context.Background(), cm, metav1.CreateOptions{})
		return werr != nil
	})
	if werr == nil {
		t.Fatal("writes should fail while etcd's disk is full")
	}
	t.Logf("what a user sees while the disk is full: %v", werr)

	os.Remove(filler)
	c.waitHealthy(3 * time.Minute)
	c.assertMarker("before-full")
	if out, err := c.kubectl("create", "configmap", "after-full", "--from-literal=a=b"); err != nil {
		t.Errorf("writes should work again once space is freed: %v\n%s", err, out)
	}
}
