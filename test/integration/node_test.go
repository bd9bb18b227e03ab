package integration

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dk8s/dk8s/pkg/addons"
	"github.com/dk8s/dk8s/pkg/images"
)

func TestNode(t *testing.T) {
	engine, _ := harness(t)
	c := newCluster(t)
	// kubelet comes as it would on a host in China without one: through a
	// binary mirror laid out as DaoCloud's (a local server here), past a
	// dead one, checked against the lock's pin.
	lock, rel := lockWithBinaries(t)
	files := harnessMirror(t, rel.Kubernetes)
	c.node, c.nodeArgs = true, []string{"--lock", lock, "--binary-mirror", deadBinaryMirror(t) + "," + files.base}
	// Runs before newCluster's own purge: purge, then look for leftovers.
	t.Cleanup(func() {
		c.purge()
		assertNodeCleanedUp(t, c)
	})

	r := c.start()
	host, _ := os.Hostname()
	node := strings.ToLower(host)
	for _, want := range []string{"containerd (CRI) is up", "node " + node + " is Ready", "kube-proxy and CoreDNS are running", "Single-node cluster ready"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("start should say %q:\n%s", want, r)
		}
	}
	if line := lineWith(r.stderr, "✓ kubelet "+rel.Kubernetes+": "); !strings.HasSuffix(line, " MB from "+files.base+", sha256 verified") {
		t.Errorf("start should say kubelet came from %s, verified: %q\n%s", files.base, line, r.stderr)
	}
	assertBinaries(t, c.dir, &images.Release{Binaries: rel.Binaries[:1]})
	// dk8s kubectl fetches the pinned kubectl the same way, and talks to
	// the cluster as its admin.
	k := dk8s(t, []string{"DK8S_DIR=" + c.dir, "DK8S_LOCK=" + lock, "DK8S_BINARY_MIRROR=" + files.base}, "kubectl", "get", "nodes")
	if k.code != 0 || !strings.Contains(lineWith(k.stdout, node), " Ready ") {
		t.Fatalf("dk8s kubectl get nodes:\n%s", k)
	}
	if line := lineWith(k.stderr, "✓ kubectl "+rel.Kubernetes+": "); !strings.HasSuffix(line, " MB from "+files.base+", sha256 verified") {
		t.Errorf("dk8s kubectl should say kubectl came from %s, verified: %q\n%s", files.base, line, k.stderr)
	}
	assertBinaries(t, c.dir, rel)
	if k := dk8s(t, []string{"DK8S_DIR=" + c.dir}, "kubectl", "get", "node", "no-such-node"); k.code != 1 || !strings.Contains(k.stderr, `nodes "no-such-node" not found`) {
		t.Errorf("kubectl's failure and exit code should be dk8s kubectl's:\n%s", k)
	}
	ps := c.waitHealthy(time.Minute)
	for _, comp := range []string{"containerd ", "kubelet "} {
		if line := lineWith(ps.stdout, comp); !strings.Contains(line, "healthy") {
			t.Errorf("ps should list %s healthy:\n%s", comp, ps.stdout)
		}
	}

	// A user's Deployment behind a Service, its image from registry.k8s.io
	// resolved through the mirror.
	c.mustKubectl("create", "deployment", "echo", "--image=registry.k8s.io/e2e-test-images/dk8s-echo:1.0", "--replicas=2", "--port=8080")
	c.mustKubectl("expose", "deployment", "echo", "--port=80", "--target-port=8080")
	c.mustKubectl("rollout", "status", "deployment/echo", "--timeout=3m")
	ip := strings.TrimSpace(c.mustKubectl("get", "service", "echo", "-o", "jsonpath={.spec.clusterIP}"))
	serves := func(when string) {
		t.Helper()
		// Only once kube-proxy has programmed the ClusterIP: before that a
		// request would leave the machine by the default route.
		if !waitFor(3*time.Minute, func() bool {
			out, _ := exec.Command("iptables", "-t", "nat", "-S", "KUBE-SERVICES").Output()
			return strings.Contains(string(out), ip+"/32")
		}) {
			logs, _ := c.kubectl("-n", "kube-system", "logs", "ds/kube-proxy", "--tail=30")
			t.Fatalf("%s: kube-proxy never programmed the Service's ClusterIP %s:\n%s", when, ip, logs)
		}
		body, err := get("http://"+ip+"/", 2*time.Minute)
		if err != nil || !strings.HasPrefix(body, "echo-") {
			t.Fatalf("%s: the Service's ClusterIP %s should answer from the host with a pod's name, got %q (%v)", when, ip, body, err)
		}
	}
	serves("after start")
	c.writeMarker("before-node-faults")

	t.Run("the add-ons are kubeadm's", func(t *testing.T) {
		// CoreDNS: two replicas, both ready, its metrics behind the
		// kube-dns Service's metrics port.
		c.mustKubectl("-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=2m")
		if got := strings.TrimSpace(c.mustKubectl("-n", "kube-system", "get", "deployment", "coredns", "-o", "jsonpath={.status.readyReplicas}")); got != "2" {
			t.Errorf("CoreDNS has %q replicas ready, want kubeadm's 2", got)
		}
		if m := c.mustKubectl("get", "--raw", "/api/v1/namespaces/kube-system/services/kube-dns:metrics/proxy/metrics"); !strings.Contains(m, "coredns_build_info") {
			t.Errorf("kube-dns's metrics port should serve CoreDNS's metrics:\n%.500s", m)
		}
		// kube-proxy runs the mode its configuration file names: no
		// warning that it defaulted.
		if ev := c.mustKubectl("get", "events", "-A", "--field-selector", "reason=KubeProxyDefaultMode", "-o", "name"); strings.TrimSpace(ev) != "" {
			t.Errorf("kube-proxy warned that no mode was set: %s", ev)
		}
		// The event is sent in the background and may come late: its log
		// line is written before kube-proxy goes on.
		logs := c.mustKubectl("-n", "kube-system", "logs", "ds/kube-proxy")
		if !strings.Contains(logs, "Using iptables Proxier") || strings.Contains(logs, "No kube-proxy mode specified") {
			t.Errorf("kube-proxy should run the iptables mode its file names:\n%s", logs)
		}
		// flanneld's health, which kubelet probes, on loopback.
		if body, err := get("http://127.0.0.1:10261/healthz", 30*time.Second); err != nil {
			t.Errorf("flanneld's health on 127.0.0.1:10261: %q %v", body, err)
		}
	})

	t.Run("kube-proxy and flannel carry iptables of their own, in the kubelet's mode", func(t *testing.T) {
		// Both modes in each image, as upstream's; the wrapper chose the
		// one the host's kubelet left its KUBE-IPTABLES-HINT chain in: this
		// host's iptables is nft.
		hostMode := "(nf_tables)"
		if out, _ := exec.Command("iptables", "-V").Output(); !strings.Contains(string(out), hostMode) {
			t.Fatalf("this test expects a host whose iptables is nft: %s", out)
		}
		for _, ds := range []string{"ds/kube-proxy", "ds/" + addons.FlannelDaemonSet} {
			for cmd, want := range map[string]string{"iptables": hostMode, "iptables-legacy": "(legacy)", "ip6tables": hostMode} {
				if got := c.mustKubectl("-n", "kube-system", "exec", ds, "--", cmd, "-V"); !strings.Contains(got, want) {
					t.Errorf("%s's %s -V: %q, want %s", ds, cmd, got, want)
				}
			}
		}
		if got := c.mustKubectl("-n", "kube-system", "exec", "ds/kube-proxy", "--", "nft", "--version"); !strings.HasPrefix(got, "nftables v") {
			t.Errorf("kube-proxy's image should carry nft, for its nftables mode: %q", got)
		}
	})

	t.Run("kubectl exec, cp, logs, port-forward, debug, exec probes and hooks", func(t *testing.T) {
		t.Cleanup(func() { os.RemoveAll("/tmp/dk8s-verbs-" + node) })
		assertKubectlVerbs(t, filepath.Join(c.dir, "admin.conf"), node, verbsImage, func(path string) string {
			b, _ := os.ReadFile(path)
			return string(b)
		})
	})

	t.Run("purge refuses a directory dk8s did not make, with a cluster up", func(t *testing.T) {
		stranger := t.TempDir()
		os.WriteFile(filepath.Join(stranger, "notes.txt"), []byte("mine"), 0o600)
		for _, dir := range []string{stranger, "//", "/.", "/etc"} {
			r := dk8s(t, nil, "reset", "--purge", "--yes", "--dir", dir)
			if r.code == 0 || !strings.Contains(r.stderr, "nothing was changed") && !strings.Contains(r.stderr, "Nothing was changed") && !strings.Contains(r.stderr, "root of the file system") {
				t.Errorf("reset --purge --dir %s should be refused:\n%s", dir, r)
			}
		}
		if data, err := os.ReadFile(filepath.Join(stranger, "notes.txt")); err != nil || string(data) != "mine" {
			t.Errorf("the stranger's file should be intact: %q %v", data, err)
		}
		c.waitHealthy(time.Minute)
	})

	// The pods' containers, by ID, with their restart counts: what must not
	// change when the runtime or kubelet crashes or restarts.
	pods := func() string {
		t.Helper()
		return c.mustKubectl("get", "pods", "-A", "--sort-by=.metadata.name", "-o",
			`jsonpath={range .items[*]}{.metadata.name}{range .status.containerStatuses[*]}{" "}{.containerID}{" restarts="}{.restartCount}{end}{"\n"}{end}`)
	}
	// What the runtime itself runs, task by task with its process: a pod
	// killed with the runtime shows here at once, before kubelet notices.
	tasks := func() string {
		t.Helper()
		var out []byte
		if !waitFor(time.Minute, func() bool {
			var err error
			out, err = exec.Command("ctr", "--address", "/run/dk8s/containerd/containerd.sock", "-n", "k8s.io", "tasks", "ls").Output()
			return err == nil
		}) {
			t.Fatal("the runtime did not answer within a minute")
		}
		var running []string
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[2] == "RUNNING" {
				running = append(running, f[0]+" pid "+f[1])
			}
		}
		sort.Strings(running)
		if len(running) < 4 {
			t.Fatalf("the runtime should run the pods' tasks (echo x2, kube-proxy, CoreDNS and their sandboxes):\n%s", out)
		}
		return strings.Join(running, "\n")
	}
	type podsAndTasks struct{ pods, tasks string }
	snapshot := func() podsAndTasks {
		t.Helper()
		// A pod still terminating (the old one of a rollout) would leave
		// between the two readings: take them once none is.
		if !waitFor(2*time.Minute, func() bool {
			list, err := c.client().CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
			if err != nil {
				return false
			}
			for _, p := range list.Items {
				if p.DeletionTimestamp != nil {
					return false
				}
			}
			return true
		}) {
			t.Fatalf("pods still terminating after two minutes:\n%s", pods())
		}
		return podsAndTasks{pods(), tasks()}
	}
	samePods := func(when string, before podsAndTasks) {
		t.Helper()
		if after := tasks(); after != before.tasks {
			t.Errorf("%s: the runtime's tasks changed (pods must outlive it):\nbefore:\n%s\nafter:\n%s", when, before.tasks, after)
		}
		if after := pods(); after != before.pods {
			t.Errorf("%s: the pods' containers changed (they must outlive it):\nbefore:\n%s\nafter:\n%s", when, before.pods, after)
		}
	}

	t.Run("the service range stays on the host with kube-proxy stopped", func(t *testing.T) {
		routed := func(ip string) {
			t.Helper()
			out, err := exec.Command("ip", "route", "get", ip).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "dev dk8s-svc") {
				t.Fatalf("%s must be routed to the host's dk8s-svc device, not out of the host: %s (%v)", ip, out, err)
			}
		}
		routed("10.96.0.1")
		c.mustKubectl("-n", "kube-system", "patch", "daemonset", "kube-proxy", "-p", `{"spec":{"template":{"spec":{"nodeSelector":{"dk8s.io/test":"no-such-node"}}}}}`)
		if !waitFor(2*time.Minute, func() bool {
			out, _ := c.kubectl("-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-proxy", "--no-headers")
			return strings.TrimSpace(out) == "" || strings.Contains(out, "No resources")
		}) {
			t.Fatal("kube-proxy did not stop")
		}
		c.mustKubectl("create", "service", "clusterip", "unprogrammed", "--tcp=80:8080")
		defer c.kubectl("delete", "service", "unprogrammed")
		nip := strings.TrimSpace(c.mustKubectl("get", "service", "unprogrammed", "-o", "jsonpath={.spec.clusterIP}"))
		if out, _ := exec.Command("iptables", "-t", "nat", "-S", "KUBE-SERVICES").Output(); strings.Contains(string(out), nip+"/32") {
			t.Fatalf("%s is programmed although kube-proxy is stopped", nip)
		}
		routed(nip) // checked before a packet is sent: nothing may leave the host
		txBefore := txPackets(t, "dk8s-svc")
		conn, err := (&net.Dialer{Timeout: 2 * time.Second}).Dial("tcp", nip+":80")
		if err == nil {
			conn.Close()
			t.Fatalf("an unprogrammed ClusterIP %s answered", nip)
		}
		if txPackets(t, "dk8s-svc") <= txBefore {
			t.Errorf("the connection to %s should have ended on the host's dk8s-svc device", nip)
		}
		c.mustKubectl("-n", "kube-system", "patch", "daemonset", "kube-proxy", "--type=json", "-p", `[{"op":"remove","path":"/spec/template/spec/nodeSelector"}]`)
		c.mustKubectl("-n", "kube-system", "rollout", "status", "daemonset/kube-proxy", "--timeout=3m")
		serves("after kube-proxy came back")
	})
	if body, err := get("http://"+ip+"/lookup?name=kubernetes.default", time.Minute); err != nil || body != "10.96.0.1" {
		t.Errorf("a pod should resolve kubernetes.default through CoreDNS to 10.96.0.1, got %q (%v)", body, err)
	}

	kill := func(name string) {
		t.Helper()
		ctr, err := engine.InspectContainer(context.Background(), name)
		if err != nil || ctr.Pid == 0 {
			t.Fatalf("%s: %v", name, err)
		}
		syscall.Kill(ctr.Pid, syscall.SIGKILL)
		if !waitFor(time.Minute, func() bool {
			again, err := engine.InspectContainer(context.Background(), name)
			return err == nil && again.Running && again.Pid != ctr.Pid
		}) {
			t.Fatalf("%s did not come back after kill -9", name)
		}
	}
	nodeReady := func(when string) {
		t.Helper()
		var out string
		if !waitFor(3*time.Minute, func() bool {
			out, _ = c.kubectl("get", "nodes", "--no-headers")
			return strings.Contains(out, " Ready ")
		}) {
			t.Fatalf("%s: the node should be Ready again:\n%s", when, out)
		}
	}

	t.Run("kill -9 of kubelet: back, node Ready, pods kept", func(t *testing.T) {
		before := snapshot()
		kill("dk8s-kubelet")
		nodeReady("after kill -9 of kubelet")
		c.waitHealthy(2 * time.Minute)
		serves("after kill -9 of kubelet")
		samePods("kill -9 of kubelet", before)
		c.assertMarker("before-node-faults")
	})

	t.Run("kill -9 of the runtime: back, node Ready, pods kept", func(t *testing.T) {
		before := snapshot()
		kill("dk8s-containerd")
		nodeReady("after the runtime restarted")
		c.waitHealthy(2 * time.Minute)
		serves("after the runtime restarted")
		samePods("kill -9 of the runtime", before)
		c.assertMarker("before-node-faults")
	})

	t.Run("docker restart of the runtime and of kubelet: pods kept", func(t *testing.T) {
		before := snapshot()
		for _, name := range []string{"dk8s-containerd", "dk8s-kubelet"} {
			if err := engine.StopContainer(context.Background(), name, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			if err := engine.StartContainer(context.Background(), name); err != nil {
				t.Fatal(err)
			}
		}
		nodeReady("after docker restart of the runtime and kubelet")
		c.waitHealthy(2 * time.Minute)
		serves("after docker restart of the runtime and kubelet")
		samePods("docker restart of the runtime and kubelet", before)
	})

	t.Run("the Docker daemon restarts: node Ready, Service answering, pods kept, no dk8s command", func(t *testing.T) {
		before := snapshot()
		restartDockerd(t)
		nodeReady("after dockerd restarted")
		c.waitHealthy(3 * time.Minute)
		serves("after dockerd restarted")
		samePods("a Docker daemon restart", before)
		c.assertMarker("before-node-faults")
	})

	t.Run("a rerun changes nothing", func(t *testing.T) {
		before := snapshot()
		r := c.start()
		if n := strings.Count(r.stderr, " unchanged"); n != len(controlPlane)+2 {
			t.Errorf("all %d containers (the control plane's, the runtime's and kubelet's) should be unchanged, %d were:\n%s", len(controlPlane)+2, n, r)
		}
		// Nor does it roll an add-on: the pods, the add-ons' among them,
		// are the same.
		samePods("a rerun", before)
	})

	t.Run("a rerun upgrades kube-proxy as an older dk8s made it", func(t *testing.T) {
		// Revision 1's kube-proxy: its settings as flags, no mode, no
		// revision recorded.
		c.mustKubectl("-n", "kube-system", "annotate", "daemonset", "kube-proxy", "io.dk8s/addon-revision-")
		c.mustKubectl("-n", "kube-system", "patch", "daemonset", "kube-proxy", "--type=json", "-p", `[{"op":"replace","path":"/spec/template/spec/containers/0/command","value":
			["kube-proxy","--kubeconfig=/var/lib/kube-proxy/kubeconfig.conf","--cluster-cidr=10.244.0.0/16","--hostname-override=$(NODE_NAME)",
			 "--metrics-bind-address=127.0.0.1:10249","--healthz-bind-address=127.0.0.1:10256","--conntrack-max-per-core=0"]}]`)
		c.mustKubectl("-n", "kube-system", "rollout", "status", "daemonset/kube-proxy", "--timeout=2m")
		if r := c.start(); r.code != 0 {
			t.Fatalf("the rerun: %s", r)
		}
		cmd := c.mustKubectl("-n", "kube-system", "get", "daemonset", "kube-proxy", "-o", "jsonpath={.spec.template.spec.containers[0].command}")
		rev := c.mustKubectl("-n", "kube-system", "get", "daemonset", "kube-proxy", "-o", `jsonpath={.metadata.annotations.io\.dk8s/addon-revision}`)
		if !strings.Contains(cmd, "--config=/var/lib/kube-proxy/config.conf") || strings.TrimSpace(rev) == "" {
			t.Errorf("after the rerun kube-proxy runs %s (revision %q), want its configuration file", cmd, rev)
		}
		c.mustKubectl("-n", "kube-system", "rollout", "status", "daemonset/kube-proxy", "--timeout=2m")
		serves("after kube-proxy's upgrade")
	})

	t.Run("kube-proxy's nftables mode serves the Service, and back to iptables", func(t *testing.T) {
		c.start("--proxy-mode", "nftables")
		c.mustKubectl("-n", "kube-system", "rollout", "status", "daemonset/kube-proxy", "--timeout=2m")
		// kube-proxy's nftables tables, and no iptables rule of its left.
		if !waitFor(2*time.Minute, func() bool {
			out, _ := exec.Command("nft", "list", "table", "ip", "kube-proxy").Output()
			return strings.Contains(string(out), ip)
		}) {
			logs, _ := c.kubectl("-n", "kube-system", "logs", "ds/kube-proxy", "--tail=30")
			t.Fatalf("kube-proxy in nftables mode never programmed %s in nftables' kube-proxy table:\n%s", ip, logs)
		}
		if out, _ := exec.Command("iptables", "-t", "nat", "-S").Output(); strings.Contains(string(out), ip+"/32") {
			t.Errorf("in nftables mode kube-proxy's iptables rules should be gone:\n%s", out)
		}
		if body, err := get("http://"+ip+"/", 2*time.Minute); err != nil || !strings.HasPrefix(body, "echo-") {
			t.Fatalf("in nftables mode the Service %s answered %q (%v)", ip, body, err)
		}
		if logs := c.mustKubectl("-n", "kube-system", "logs", "ds/kube-proxy"); !strings.Contains(logs, "Using nftables Proxier") {
			t.Errorf("kube-proxy should say it runs the nftables mode:\n%s", logs)
		}
		c.start("--proxy-mode", "iptables")
		c.mustKubectl("-n", "kube-system", "rollout", "status", "daemonset/kube-proxy", "--timeout=2m")
		serves("back in iptables mode")
	})

	t.Run("stop keeps the pods running, and start adopts them", func(t *testing.T) {
		before := snapshot()
		if r := c.run("stop"); r.code != 0 {
			t.Fatalf("dk8s stop: %s", r)
		}
		// kube-proxy, a pod, still holds its ports: start must not take
		// them for another process's.
		r := c.start()
		if !strings.Contains(r.stderr, "Single-node cluster ready") {
			t.Errorf("start after stop:\n%s", r)
		}
		nodeReady("after stop and start")
		serves("after stop and start")
		samePods("dk8s stop and start", before)
	})

	// The purge that ends the test runs on a stopped node: reset must start
	// the runtime to stop the pods, or they would run on with nothing to
	// manage them (assertNodeCleanedUp looks for their shims).
	if r := c.run("stop"); r.code != 0 {
		t.Fatalf("dk8s stop: %s", r)
	}
}
