package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/dk8s/dk8s/pkg/containers"
)

var controlPlane = []string{"dk8s-etcd", "dk8s-apiserver", "dk8s-controller-manager", "dk8s-scheduler", "dk8s-csr-approver", "dk8s-etcd-snapshotter"}

// cluster is a control plane a test starts in its own directory, purged
// before and after, so the suite leaves the machine as it found it.
type cluster struct {
	t   *testing.T
	dir string
	// node makes start bring up the node too, with nodeArgs; the
	// control-plane tests run without it, to be quick and to the point.
	node     bool
	nodeArgs []string
	// netnsBefore are the pods' network namespaces pinned on the host
	// before the test: a purge must leave no other.
	netnsBefore []string
}

const markerNS = "default"

func TestControlPlane(t *testing.T) {
	engine, _ := harness(t)
	c := newCluster(t)

	r := c.start()
	for _, want := range []string{"✓ etcd is healthy", "✓ kube-apiserver is healthy", "✓ kube-controller-manager is healthy", "✓ kube-scheduler is healthy"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("start should say %q:\n%s", want, r)
		}
	}
	ps := c.run("ps")
	if ps.code != 0 {
		t.Fatalf("ps should exit 0 on a healthy cluster:\n%s", ps)
	}
	for _, comp := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		if line := lineWith(ps.stdout, comp+" "); !strings.Contains(line, "running") || !strings.Contains(line, "healthy") {
			t.Errorf("ps line for %s = %q", comp, line)
		}
	}
	nss, err := c.client().CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("listing namespaces with the admin kubeconfig over TLS: %v", err)
	}
	var names []string
	for _, ns := range nss.Items {
		names = append(names, ns.Name)
	}
	if !strings.Contains(strings.Join(names, " "), "kube-system") {
		t.Errorf("namespaces %v lack kube-system", names)
	}
	kubectl := filepath.Join(filepath.Dir(testLock), "kubectl")
	out, err := exec.Command(kubectl, "--kubeconfig", filepath.Join(c.dir, "admin.conf"), "get", "namespaces").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "kube-system") {
		t.Errorf("kubectl --kubeconfig admin.conf get namespaces: %v\n%s", err, out)
	}
	c.writeMarker("before-faults")
	for _, n := range controlPlane {
		ctr, _ := engine.InspectContainer(context.Background(), n)
		if ctr.Labels[containers.LabelSpecHash] == "" || ctr.Labels[containers.LabelComponent] == "" {
			t.Errorf("%s lacks dk8s's labels: %v", n, ctr.Labels)
		}
	}

	t.Run("kubeconfig --merge keeps the user's other clusters", func(t *testing.T) {
		home := t.TempDir()
		os.MkdirAll(filepath.Join(home, ".kube"), 0o700)
		other := "apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster: {server: 'https://192.0.2.99:6443'}\ncontexts:\n- name: other\n  context: {cluster: other, user: other}\nusers:\n- name: other\n  user: {token: x}\ncurrent-context: other\n"
		os.WriteFile(filepath.Join(home, ".kube", "config"), []byte(other), 0o600)
		r := dk8s(t, []string{"HOME=" + home, "KUBECONFIG="}, "kubeconfig", "--merge", "--dir", c.dir)
		if r.code != 0 {
			t.Fatal(r)
		}
		merged, err := clientcmd.LoadFromFile(filepath.Join(home, ".kube", "config"))
		if err != nil {
			t.Fatal(err)
		}
		if merged.Clusters["other"] == nil || merged.Contexts["other"] == nil || merged.CurrentContext != "admin@dk8s" {
			t.Errorf("merged config: current %q, clusters %v", merged.CurrentContext, merged.Clusters)
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(home, ".kube", "config"))
		if err != nil {
			t.Fatal(err)
		}
		cs, _ := kubernetes.NewForConfig(cfg)
		if _, err := cs.CoreV1().Namespaces().Get(context.Background(), "kube-system", metav1.GetOptions{}); err != nil {
			t.Errorf("the merged context does not reach the cluster: %v", err)
		}
	})

	t.Run("certs shows a year left on the serving certificate", func(t *testing.T) {
		r := c.run("certs")
		if line := lineWith(r.stdout, "apiserver "); r.code != 0 || !strings.Contains(line, "364d") && !strings.Contains(line, "365d") {
			t.Errorf("certs:\n%s", r)
		}
	})

	t.Run("a rerun recreates nothing", func(t *testing.T) {
		before := ids(t, engine)
		r := c.start()
		if strings.Count(r.stderr, " unchanged") != len(controlPlane) {
			t.Errorf("every container should be unchanged:\n%s", r)
		}
		if after := ids(t, engine); !equalMaps(before, after) {
			t.Errorf("container IDs changed: %v -> %v", before, after)
		}
	})

	t.Run("a changed flag replaces exactly one container", func(t *testing.T) {
		before := ids(t, engine)
		conf := filepath.Join(t.TempDir(), "start.yaml")
		os.WriteFile(conf, []byte("extraArgs:\n  kube-scheduler:\n    v: \"2\"\n"), 0o644)
		r := c.start("--config", conf)
		after := ids(t, engine)
		for _, n := range controlPlane {
			if changed := before[n] != after[n]; changed != (n == "dk8s-scheduler") {
				t.Errorf("%s replaced = %v:\n%s", n, changed, r)
			}
		}
		c.assertMarker("before-faults")
		// The same flag on the command line is the same spec: nothing changes.
		if r := c.start("--extra-args", "kube-scheduler:v=2"); strings.Count(r.stderr, " unchanged") != len(controlPlane) {
			t.Errorf("--extra-args and --config with the same flag should plan the same containers:\n%s", r)
		}
		c.start() // back to the defaults: the scheduler is replaced again
	})

	t.Run("kill -9 of each component: it comes back by itself", func(t *testing.T) {
		for _, n := range controlPlane {
			ctr, err := engine.InspectContainer(context.Background(), n)
			if err != nil || ctr.Pid == 0 {
				t.Fatalf("%s: %v, pid %d", n, err, ctr.Pid)
			}
			if err := syscall.Kill(ctr.Pid, syscall.SIGKILL); err != nil {
				t.Fatalf("kill -9 %s (pid %d): %v", n, ctr.Pid, err)
			}
			if !waitFor(30*time.Second, func() bool {
				again, err := engine.InspectContainer(context.Background(), n)
				return err == nil && again.Pid != ctr.Pid && again.Running
			}) {
				t.Fatalf("%s was not running again with a new process within 30s of kill -9 (pid %d): Docker's restart policy did not bring it back", n, ctr.Pid)
			}
			c.waitHealthy(2 * time.Minute)
			if again, _ := engine.InspectContainer(context.Background(), n); again.RestartCount <= ctr.RestartCount {
				t.Errorf("%s restart count %d, was %d", n, again.RestartCount, ctr.RestartCount)
			}
		}
		ps := c.run("ps")
		if !strings.Contains(lineWith(ps.stdout, "etcd "), "healthy") {
			t.Errorf("ps after the kills:\n%s", ps)
		}
		c.assertMarker("before-faults")
	})

	t.Run("stop keeps everything and ps says so", func(t *testing.T) {
		if r := c.run("stop"); r.code != 0 {
			t.Fatal(r)
		}
		ps := c.run("ps")
		if ps.code == 0 || !strings.Contains(lineWith(ps.stdout, "kube-apiserver "), "exited") {
			t.Errorf("ps should exit non-zero and show exited components:\n%s", ps)
		}
		c.start()
		c.assertMarker("before-faults")
	})

	t.Run("the Docker daemon restarts: the control plane comes back alone", func(t *testing.T) {
		restartDockerd(t)
		c.waitHealthy(3 * time.Minute)
		c.assertMarker("before-faults")
	})

	t.Run("reset keeps the data; start brings the same cluster back", func(t *testing.T) {
		r := c.run("reset")
		if r.code != 0 || !strings.Contains(r.stderr, "kept "+c.dir) {
			t.Fatalf("reset:\n%s", r)
		}
		for _, n := range controlPlane {
			if _, err := engine.InspectContainer(context.Background(), n); !containers.IsNotFound(err) {
				t.Errorf("%s should be gone after reset: %v", n, err)
			}
		}
		c.start()
		c.assertMarker("before-faults")
	})

	t.Run("certs renew keeps the cluster", func(t *testing.T) {
		p := filepath.Join(c.dir, "pki", "apiserver.crt")
		before, _ := os.ReadFile(p)
		caBefore, _ := os.ReadFile(filepath.Join(c.dir, "pki", "ca.crt"))
		if r := c.run("certs", "renew"); r.code != 0 || !strings.Contains(r.stderr, "dk8s stop && dk8s start") {
			t.Fatalf("renew:\n%s", r)
		}
		after, _ := os.ReadFile(p)
		caAfter, _ := os.ReadFile(filepath.Join(c.dir, "pki", "ca.crt"))
		if string(before) == string(after) || string(caBefore) != string(caAfter) {
			t.Errorf("renew should replace the serving certificate and keep the CA")
		}
		if r := c.run("stop"); r.code != 0 {
			t.Fatal(r)
		}
		c.start()
		c.assertMarker("before-faults")
	})

	t.Run("keys are root's alone", func(t *testing.T) {
		assertKeysRootOnly(t, c.dir)
	})

	t.Run("reset --purge asks, then removes the data", func(t *testing.T) {
		r := c.run("reset", "--purge")
		if r.code == 0 || !strings.Contains(r.stderr, "--yes") {
			t.Fatalf("--purge without a yes should refuse:\n%s", r)
		}
		if _, err := os.Stat(filepath.Join(c.dir, "etcd")); err != nil {
			t.Fatalf("a refused purge removed data: %v", err)
		}
		if r := c.run("reset", "--purge", "--yes"); r.code != 0 {
			t.Fatal(r)
		}
		if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
			t.Fatalf("%s should be gone: %v", c.dir, err)
		}
		c.start()
		if v, found := c.marker(); found {
			t.Errorf("after a purge the cluster should be new, but the marker reads %q", v)
		}
	})
}
