package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestWorkersJoin is issue 10's "done when", on three harness machines: a
// control plane, a worker joined by the command and one by the agent
// container; bad join inputs refused with nothing made; a Deployment with
// a pod on each machine, reaching each other, a Service and DNS; a worker
// rebooted and a kubelet removed by hand come back with no command.
func TestWorkersJoin(t *testing.T) {
	cp := startMachine(t, "dk8s-it-cp")
	w1 := startMachine(t, "dk8s-it-w1")
	w2 := startMachine(t, "dk8s-it-w2")
	must := func(m *machine, args ...string) result {
		t.Helper()
		r := m.dk8s(t, args...)
		if r.code != 0 {
			t.Fatalf("on %s: dk8s %s:\n%s", m.name, strings.Join(args, " "), r)
		}
		return r
	}
	must(cp, "pull", "--mirror", machineFlatMirror)
	must(cp, "start", "--kubelet-binary", machineKubelet, "--mirror", machinePathMirror)

	kubectl := adminKubectl(t, cp)
	mustKubectlT := failing(kubectl)

	// What a user copies from the control plane: both forms of the join.
	r := must(cp, "token", "create", "--print-join-command", "--agent-image", "dk8s/dk8s:test")
	joinCmd, agentCmd := joinCommands(r.stdout)
	if joinCmd == nil || agentCmd == nil {
		t.Fatalf("token create --print-join-command should print both forms:\n%s", r)
	}
	server, tok, hash := joinCmd[1], flagValue(joinCmd, "--token"), flagValue(joinCmd, "--ca-cert-hash")
	if server != "https://"+cp.addr+":6443" || tok == "" || !strings.HasPrefix(hash, "sha256:") {
		t.Fatalf("join command %v", joinCmd)
	}
	nodeArgs := []string{"--kubelet-binary", machineKubelet, "--mirror", machinePathMirror}

	t.Run("bad join inputs are refused and nothing is made", func(t *testing.T) {
		expired := strings.TrimSpace(must(cp, "token", "create", "--ttl", "1s").stdout)
		time.Sleep(2 * time.Second)
		id, _, _ := strings.Cut(tok, ".")
		for _, c := range []struct {
			name, server, tok, hash, want string
		}{
			{"a wrong CA hash", server, tok, "sha256:" + strings.Repeat("0", 64), "not the one given"},
			{"a wrong token secret", server, id + ".0123456789abcdef", hash, "signature"},
			{"an expired token", server, expired, hash, "dk8s token create"},
			{"an unreachable server", "https://" + machineNetPre + "254:6443", tok, hash, "cannot be reached"},
			{"a malformed token", server, "abc", hash, "is not a join token"},
		} {
			// An answer that can be waited out (no answer, no signature yet)
			// is waited for 3s; the rest are final at once.
			r := w1.dk8s(t, append([]string{"join", c.server, "--token", c.tok, "--ca-cert-hash", c.hash, "--discovery-timeout", "3s"}, nodeArgs...)...)
			if r.code == 0 || !strings.Contains(r.stderr, c.want) {
				t.Errorf("%s: want a failure saying %q:\n%s", c.name, c.want, r)
			}
			assertNothingLeft(t, w1, c.name, dirAndContainers)
		}
	})

	t.Run("a worker joins by the command", func(t *testing.T) {
		r := must(w1, append(joinCmd, nodeArgs...)...)
		if !strings.Contains(r.stderr, "node dk8s-it-w1 is Ready") {
			t.Errorf("join should say the node is Ready:\n%s", r)
		}
		if w1.exec(t, "test", "-e", "/var/lib/dk8s/bootstrap-kubelet.conf").code == 0 {
			t.Error("the token's kubeconfig should not be kept once kubelet has its own identity")
		}
		if ps := w1.dk8s(t, "ps"); ps.code != 0 || !strings.Contains(ps.stdout, "dk8s-kubelet") || strings.Contains(ps.stdout, "dk8s-apiserver") {
			t.Errorf("ps on a worker shows its parts, not a control plane's:\n%s", ps)
		}
	})

	t.Run("a worker joins by the agent container, as printed, with Docker and dk8s alone", func(t *testing.T) {
		mustKubectl := mustKubectlT(t)
		// The machine has pulled nothing and reaches no registry holding
		// the agent's image: the printed line makes it from the machine's
		// dk8s, then runs it.
		if r := w2.exec(t, "sh", "-c", agentLine(agentCmd, "--kubelet-binary", machineKubelet, "--mirror", machinePathMirror, "--lock", machineLock)); r.code != 0 {
			t.Fatalf("the printed agent line:\n%s", r)
		}
		// dk8s alone, on no base image.
		if r := w2.exec(t, "docker", "image", "inspect", "-f", "{{len .RootFS.Layers}} {{json .Config.Entrypoint}}", "dk8s/dk8s:test"); strings.TrimSpace(r.stdout) != `1 ["/bin/dk8s"]` {
			t.Errorf("the agent's image should be one layer, dk8s its entrypoint:\n%s", r)
		}
		if !waitFor(4*time.Minute, func() bool { return nodeReady(kubectl, "dk8s-it-w2") }) {
			t.Fatalf("the agent's node is not Ready:\n%s\n%s", w2.exec(t, "docker", "logs", "dk8s-agent"), mustKubectl("get", "nodes", "-o", "wide"))
		}
		// The token's secret is on no command line: not the agent's as
		// Docker shows it, nor any process's, which every user reads.
		_, secret, _ := strings.Cut(tok, ".")
		if args := w2.exec(t, "docker", "inspect", "-f", "{{.Path}} {{json .Args}}", "dk8s-agent").stdout; strings.Contains(args, secret) {
			t.Errorf("the agent's command line holds the token's secret: %s", args)
		}
		if r := w2.exec(t, "sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '"); r.code != 0 || !strings.Contains(r.stdout, "agent") || strings.Contains(r.stdout, secret) {
			t.Errorf("a process's command line on the machine holds the token's secret, or none was read:\n%s", r)
		}
	})

	t.Run("three Ready nodes, the control plane's labelled as kubeadm labels it", func(t *testing.T) {
		mustKubectl := mustKubectlT(t)
		for _, n := range []string{"dk8s-it-cp", "dk8s-it-w1", "dk8s-it-w2"} {
			if !waitFor(time.Minute, func() bool { return nodeReady(kubectl, n) }) {
				t.Errorf("node %s is not Ready:\n%s", n, mustKubectl("get", "nodes", "-o", "wide"))
			}
		}
		if roles := mustKubectl("get", "node", "dk8s-it-cp", "-o", "jsonpath={.metadata.labels}"); !strings.Contains(roles, "node-role.kubernetes.io/control-plane") {
			t.Errorf("the control plane's node should carry its role: %s", roles)
		}
		if out := mustKubectl("get", "nodes"); !strings.Contains(out, "control-plane") {
			t.Errorf("kubectl get nodes should show the control plane's role:\n%s", out)
		}
	})

	t.Run("a node that lies about its addresses gets no certificate for them", func(t *testing.T) {
		assertLyingNodeRefused(t, cp, w1, w2)
	})

	t.Run("pods on every machine reach each other, a Service and DNS", func(t *testing.T) {
		mustKubectl := mustKubectlT(t)
		deployEcho(t, mustKubectl)
		pods := echoPods(t, mustKubectl)
		if len(pods) != 3 {
			t.Fatalf("want a pod on each of the three machines, got %v\n%s", pods, mustKubectl("get", "pods", "-o", "wide"))
		}
		assertPodsReach(t, cp, pods, strings.TrimSpace(mustKubectl("get", "service", "echo", "-o", "jsonpath={.spec.clusterIP}")))
		// kubectl logs goes through the apiserver to the worker's kubelet,
		// whose serving certificate the apiserver verifies.
		if out, err := kubectl("logs", pods["dk8s-it-w1"].name); err != nil {
			t.Errorf("kubectl logs of the pod on a worker: %v\n%s", err, out)
		}
	})

	t.Run("a worker rebooted comes back Ready with no command", func(t *testing.T) {
		mustKubectl := mustKubectlT(t)
		w1.reboot(t)
		if !waitFor(4*time.Minute, func() bool {
			pods := echoPods(t, mustKubectl)
			p, ok := pods["dk8s-it-w1"]
			return nodeReady(kubectl, "dk8s-it-w1") && ok && fetchFrom(t, cp, "http://"+p.ip+":8080/") == p.name
		}) {
			t.Fatalf("after a reboot, dk8s-it-w1 and its pod are not back:\n%s\n%s", mustKubectl("get", "nodes"), mustKubectl("get", "pods", "-o", "wide"))
		}
	})

	t.Run("kubectl exec, cp, logs, port-forward, debug, exec probes and hooks on the rebooted worker", func(t *testing.T) {
		assertKubectlVerbs(t, machineKubeconfig(t, cp), w1.name, verbsImage, func(path string) string { return w1.exec(t, "cat", path).stdout })
	})

	t.Run("the agent puts back a kubelet container removed by hand", func(t *testing.T) {
		if r := w2.exec(t, "docker", "rm", "-f", "dk8s-kubelet"); r.code != 0 {
			t.Fatalf("%s", r)
		}
		if !waitFor(3*time.Minute, func() bool {
			return w2.exec(t, "docker", "inspect", "-f", "{{.State.Running}}", "dk8s-kubelet").stdout == "true\n" && nodeReady(kubectl, "dk8s-it-w2")
		}) {
			t.Fatalf("the kubelet is not back:\n%s", w2.exec(t, "docker", "logs", "--tail", "30", "dk8s-agent"))
		}
	})

	t.Run("the agent applies a changed node setting", func(t *testing.T) {
		mustKubectl := mustKubectlT(t)
		// The agent started again with another setting, as a user changes
		// one: its first join applies it.
		if r := w2.exec(t, "docker", "rm", "-f", "dk8s-agent"); r.code != 0 {
			t.Fatalf("%s", r)
		}
		if r := w2.exec(t, "sh", "-c", agentLine(agentCmd, "--kubelet-binary", machineKubelet, "--mirror", machinePathMirror, "--lock", machineLock, "--max-pods", "42")); r.code != 0 {
			t.Fatalf("the agent's line:\n%s", r)
		}
		if !waitFor(3*time.Minute, func() bool {
			out, _ := kubectl("get", "node", "dk8s-it-w2", "-o", "jsonpath={.status.capacity.pods}")
			return out == "42" && nodeReady(kubectl, "dk8s-it-w2")
		}) {
			t.Fatalf("--max-pods 42 was not applied:\n%s\n%s", mustKubectl("get", "node", "dk8s-it-w2", "-o", "jsonpath={.status.capacity}"), w2.exec(t, "docker", "logs", "--tail", "30", "dk8s-agent"))
		}
	})

	t.Run("token list shows the tokens, token delete removes one", func(t *testing.T) {
		id, _, _ := strings.Cut(tok, ".")
		if r := must(cp, "token", "list"); !strings.Contains(r.stdout, id) {
			t.Errorf("token list should show %s:\n%s", id, r)
		}
		must(cp, "token", "delete", id)
		if r := must(cp, "token", "list"); strings.Contains(r.stdout, id) {
			t.Errorf("token %s should be gone:\n%s", id, r)
		}
	})

	t.Run("ps on the control plane shows the nodes", func(t *testing.T) {
		r := cp.dk8s(t, "ps")
		for _, want := range []string{"dk8s-csr-approver", "NODE", "dk8s-it-w1", "dk8s-it-w2", "control-plane"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("ps on the control plane should show %s:\n%s", want, r)
			}
		}
	})

	t.Run("no node may delete a Node, its own or another's", func(t *testing.T) {
		asNode := []string{"--as", "system:node:dk8s-it-w1", "--as-group", "system:nodes"}
		// The answer is its last line; kubectl warns before it that nodes
		// are not namespaced.
		out, _ := kubectl(append([]string{"auth", "can-i", "delete", "nodes"}, asNode...)...)
		if lines := strings.Split(strings.TrimSpace(out), "\n"); lines[len(lines)-1] != "no" {
			t.Errorf("a node may delete nodes (can-i says %q)", out)
		}
		for _, n := range []string{"dk8s-it-w1", "dk8s-it-w2"} {
			out, err := kubectl(append([]string{"delete", "node", n, "--dry-run=server"}, asNode...)...)
			if err == nil || !strings.Contains(out, "forbidden") {
				t.Errorf("node dk8s-it-w1 deleting node %s should be forbidden: %v\n%s", n, err, out)
			}
		}
	})

	t.Run("a worker reset with --drain leaves the cluster and the machine clean", func(t *testing.T) {
		mustKubectl := mustKubectlT(t)
		r := w1.dk8s(t, "reset", "--drain", "--purge", "--yes")
		if r.code != 0 || !strings.Contains(r.stderr, "the pods of node dk8s-it-w1") {
			t.Fatalf("reset of a worker:\n%s", r)
		}
		// Its Node stays for a control plane to delete, as reset says.
		if want := "dk8s kubectl delete node dk8s-it-w1"; !strings.Contains(r.stderr, want) {
			t.Errorf("reset of a worker should say how to remove its Node (%q):\n%s", want, r)
		}
		mustKubectl("delete", "node", "dk8s-it-w1")
		// Its pod was deleted first and made again elsewhere: the Deployment
		// is whole on the other two machines.
		mustKubectl("rollout", "status", "deployment/echo", "--timeout", "2m")
		assertNothingLeft(t, w1, "reset --purge", append(slices.Clone(dirAndContainers), sh("network devices", "ip -o link show | none grep -E 'flannel.1|dk8s0'")))
	})
}

// failing turns kubectl into a maker of its failing form: given a test (a
// subtest's own t), the kubectl it returns fails that test on an error.
func failing(kubectl func(args ...string) (string, error)) func(t *testing.T) func(args ...string) string {
	return func(t *testing.T) func(args ...string) string {
		return func(args ...string) string {
			t.Helper()
			out, err := kubectl(args...)
			if err != nil {
				t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			return out
		}
	}
}

// assertPodsReach checks, from machine from's host, that each echo pod of
// pods (one per node) reaches the pods on the other nodes, the echo Service
// at svcIP, and the Service's name through the cluster's DNS.
func assertPodsReach(t *testing.T, from *machine, pods map[string]pod, svcIP string) {
	t.Helper()
	for node, a := range pods {
		for other, b := range pods {
			if other == node {
				continue
			}
			// From the host to a pod on node, which asks a pod on another
			// machine.
			if got := fetchFrom(t, from, "http://"+a.ip+":8080/fetch?url=http://"+b.ip+":8080/"); got != b.name {
				t.Errorf("pod on %s asking the pod on %s: got %q, want %q", node, other, got, b.name)
			}
		}
		if got := fetchFrom(t, from, "http://"+a.ip+":8080/fetch?url=http://"+svcIP+"/"); !strings.HasPrefix(got, "echo-") {
			t.Errorf("pod on %s asking the Service %s: got %q", node, svcIP, got)
		}
		if got := fetchFrom(t, from, "http://"+a.ip+":8080/lookup?name=echo.default.svc.cluster.local"); got != svcIP {
			t.Errorf("DNS from the pod on %s: echo.default.svc.cluster.local is %q, want %s", node, got, svcIP)
		}
	}
}

// adminKubectl runs the harness's kubectl from this host (the machines'
// network is the host's too) as the admin of the control plane in cp.
func adminKubectl(t testing.TB, cp *machine) func(args ...string) (string, error) {
	t.Helper()
	kubeconfig := machineKubeconfig(t, cp)
	return func(args ...string) (string, error) {
		out, err := exec.Command(filepath.Join(filepath.Dir(testLock), "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
		return string(out), err
	}
}

// machineKubeconfig is a copy, on this host, of the admin kubeconfig of
// the control plane in cp.
func machineKubeconfig(t testing.TB, cp *machine) string {
	t.Helper()
	kubeconfig := filepath.Join(t.TempDir(), "admin.conf")
	conf := cp.exec(t, "cat", "/var/lib/dk8s/admin.conf").stdout
	if cp.vm != nil {
		conf = cp.vm.reachable(conf)
	}
	if err := os.WriteFile(kubeconfig, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return kubeconfig
}

// joinCommands are the two forms 'token create --print-join-command'
// printed: dk8s join's arguments (from "join"), and the agent's whole
// line (dk8s agent image, then docker run), split at spaces.
func joinCommands(out string) (join, agent []string) {
	for _, line := range strings.Split(out, "\n") {
		switch f := strings.Fields(line); {
		case len(f) > 2 && f[0] == "dk8s" && f[1] == "join":
			join = f[1:]
		case len(f) > 2 && f[0] == "dk8s" && f[1] == "agent":
			agent = f
		}
	}
	return join, agent
}

// agentLine is the shell command that runs the printed agent line on a
// machine as a user pastes it, with extra arguments for the agent after
// it, and the machine's dk8s on the PATH as an installed one would be.
func agentLine(agent []string, extra ...string) string {
	return "PATH=" + filepath.Dir(machineDK8s) + ":$PATH && " + strings.Join(append(slices.Clone(agent), extra...), " ")
}

// flagValue is the value after flag in args.
func flagValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// nodeReady tells whether kubectl sees node Ready.
func nodeReady(kubectl func(...string) (string, error), node string) bool {
	out, err := kubectl("get", "node", node, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	return err == nil && strings.TrimSpace(out) == "True"
}

// fetchFrom is what a GET of url answers on machine m's host ("" on error).
func fetchFrom(t *testing.T, m *machine, url string) string {
	t.Helper()
	var body string
	waitFor(30*time.Second, func() bool {
		r := m.exec(t, "curl", "-fsS", "--max-time", "5", url)
		body = strings.TrimSpace(r.stdout)
		return r.code == 0
	})
	return body
}

// deployEcho runs the harness's echo workload, one pod per node, behind a
// Service.
func deployEcho(t testing.TB, kubectl func(...string) string) {
	t.Helper()
	deployEchoWithin(t, kubectl, 4*time.Minute)
}

// deployEchoWithin is deployEcho with the rollout's deadline given, for a
// host slower than the machines.
func deployEchoWithin(t testing.TB, kubectl func(...string) string, timeout time.Duration) {
	t.Helper()
	manifest := `apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 3
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: echo}}}
      containers:
      - {name: echo, image: registry.k8s.io/e2e-test-images/dk8s-echo:1.0, ports: [{containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080}]
`
	kubectl("apply", "-f", manifestFile(t, "echo", manifest))
	kubectl("rollout", "status", "deployment/echo", "--timeout", timeout.String())
}

// manifestFile writes manifest for 'kubectl apply -f', and removes it when
// t ends. Not in t.TempDir(): kubectl -f splits its argument at commas,
// which a subtest's name has.
func manifestFile(t testing.TB, name, manifest string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "dk8s-"+name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(f, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

type pod struct{ name, ip string }

// echoPods are the echo pods by node.
func echoPods(t *testing.T, kubectl func(...string) string) map[string]pod {
	t.Helper()
	var list struct {
		Items []struct {
			Metadata struct{ Name string }
			Spec     struct{ NodeName string }
			Status   struct {
				PodIP string
				Phase string
			}
		}
	}
	if err := json.Unmarshal([]byte(kubectl("get", "pods", "-l", "app=echo", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]pod{}
	for _, p := range list.Items {
		if p.Status.Phase == "Running" && p.Status.PodIP != "" {
			out[p.Spec.NodeName] = pod{p.Metadata.Name, p.Status.PodIP}
		}
	}
	return out
}
