package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/dk8s/dk8s/pkg/containers"
)

// What a test does with the cluster it starts in a directory of its own:
// start, ask, fault, check its marker object, purge.

func newCluster(t *testing.T) *cluster {
	t.Helper()
	harness(t)
	if r := dk8s(t, nil, "pull", "--mirror", flatMirror); r.code != 0 {
		t.Fatalf("pulling the image set: %s", r)
	}
	c := &cluster{t: t, dir: filepath.Join(os.TempDir(), "dk8s-it-"+strings.ToLower(t.Name()))}
	c.purge()
	// Pods' network namespaces of another runtime's (or of a run before
	// this fix) are not this test's to count.
	c.netnsBefore, _ = filepath.Glob("/var/run/netns/cni-*")
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range controlPlane {
				r := dk8s(t, nil, "logs", n, "--tail", "20")
				t.Logf("last logs of %s:\n%s", n, r.stdout)
			}
		}
		c.purge()
	})
	return c
}

func (c *cluster) purge() {
	c.t.Helper()
	if r := dk8s(c.t, nil, "reset", "--purge", "--yes", "--dir", c.dir); r.code != 0 {
		c.t.Fatalf("reset --purge: %s", r)
	}
}

func (c *cluster) run(args ...string) result {
	c.t.Helper()
	return dk8s(c.t, nil, append(args, "--dir", c.dir)...)
}

func (c *cluster) start(args ...string) result {
	c.t.Helper()
	base := []string{"start", "--timeout", "2m", "--control-plane-only"}
	if c.node {
		base = append([]string{"start", "--timeout", "3m", "--mirror", pathMirror}, c.nodeArgs...)
	}
	r := c.run(append(base, args...)...)
	if r.code != 0 {
		c.t.Fatalf("dk8s start failed:\n%s", r)
	}
	return r
}

func (c *cluster) client() *kubernetes.Clientset {
	c.t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(c.dir, "admin.conf"))
	if err != nil {
		c.t.Fatal(err)
	}
	cfg.Timeout = 10 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	return cs
}

// waitHealthy waits until `dk8s ps` exits 0, as monitoring would.
func (c *cluster) waitHealthy(d time.Duration) result {
	c.t.Helper()
	var r result
	if !waitFor(d, func() bool { r = c.run("ps"); return r.code == 0 }) {
		c.t.Fatalf("the control plane did not become healthy within %s:\n%s", d, r)
	}
	return r
}

func (c *cluster) writeMarker(value string) {
	c.t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dk8s-marker"}, Data: map[string]string{"value": value}}
	if _, err := c.client().CoreV1().ConfigMaps(markerNS).Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
		c.t.Fatalf("writing the marker: %v", err)
	}
}

// marker reads the marker, retrying while the apiserver settles; found is
// false when the apiserver answers that there is none. An apiserver that
// does not answer within 30s fails the test: that is no "not found".
func (c *cluster) marker() (value string, found bool) {
	c.t.Helper()
	var cm *corev1.ConfigMap
	var err error
	if !waitFor(30*time.Second, func() bool {
		cm, err = c.client().CoreV1().ConfigMaps(markerNS).Get(context.Background(), "dk8s-marker", metav1.GetOptions{})
		return err == nil || apierrors.IsNotFound(err)
	}) {
		c.t.Fatalf("the apiserver did not answer a read of the marker within 30s: %v", err)
	}
	if err != nil {
		return "", false
	}
	return cm.Data["value"], true
}

func (c *cluster) assertMarker(want string) {
	c.t.Helper()
	if got, found := c.marker(); !found || got != want {
		c.t.Fatalf("the marker written before should read %q, got %q (found %v): etcd data was lost", want, got, found)
	}
}

func ids(t *testing.T, engine containers.Engine) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range controlPlane {
		c, err := engine.InspectContainer(context.Background(), n)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		out[n] = c.ID
	}
	return out
}

// restartDockerd stops the daemon the way an init system would (SIGTERM),
// then starts it again through the harness.
func restartDockerd(t *testing.T) {
	t.Helper()
	out, err := exec.Command("pidof", "dockerd").Output()
	if err != nil {
		t.Fatalf("finding dockerd: %v", err)
	}
	pid, _ := strconv.Atoi(strings.Fields(string(out))[0])
	syscall.Kill(pid, syscall.SIGTERM)
	if !waitFor(60*time.Second, func() bool { return syscall.Kill(pid, 0) != nil }) {
		t.Fatal("dockerd did not stop")
	}
	if out, err := exec.Command("../harness/engine.sh").CombinedOutput(); err != nil {
		t.Fatalf("starting dockerd again: %v\n%s", err, out)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
