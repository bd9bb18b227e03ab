package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestNodeUnderSystemd is issue 14's "done when": the node suite on the
// path most hosts take, machines that boot systemd, where dk8s runs the
// node's containerd and kubelet as systemd units (the control plane stays
// in Docker's containers). A control plane and a worker joined to it; a
// Deployment behind a Service and DNS; kill -9 and systemctl restart of
// each agent with the pods kept; a reboot of each machine with no command;
// stop and start; reset --purge leaving nothing; a start after the purge.
func TestNodeUnderSystemd(t *testing.T) {
	cp := startSystemdMachine(t, "dk8s-it-sd-cp")
	w := startSystemdMachine(t, "dk8s-it-sd-w")
	nodeArgs := []string{"--kubelet-binary", machineKubelet, "--mirror", machinePathMirror}
	units := []string{"dk8s-containerd.service", "dk8s-kubelet.service"}

	cp.must(t, "pull", "--mirror", machineFlatMirror)
	r := cp.must(t, append([]string{"start"}, nodeArgs...)...)
	for _, want := range []string{"dk8s-containerd.service installed", "dk8s-kubelet.service installed", "node dk8s-it-sd-cp is Ready"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("start under systemd should say %q:\n%s", want, r)
		}
	}
	kubectl := adminKubectl(t, cp)
	mustKubectl := failing(kubectl)

	t.Run("the node's agents are systemd's units, enabled and active", func(t *testing.T) {
		assertUnitsUp(t, cp, units)
		if names := cp.exec(t, "docker", "ps", "-a", "--format", "{{.Names}}").stdout; strings.Contains(names, "dk8s-kubelet") || strings.Contains(names, "dk8s-containerd") {
			t.Errorf("under systemd, Docker should run no agent of the node:\n%s", names)
		}
	})

	t.Run("ps says which supervisor runs each component; logs read the journal", func(t *testing.T) {
		ps := cp.must(t, "ps")
		for comp, want := range map[string][]string{
			"etcd ":       {"docker", "dk8s-etcd", "healthy"},
			"containerd ": {"systemd", "dk8s-containerd.service", "running", "healthy"},
			"kubelet ":    {"systemd", "dk8s-kubelet.service", "running", "healthy", "v1."},
		} {
			line := lineWith(ps.stdout, comp)
			for _, w := range want {
				if !strings.Contains(line, w) {
					t.Errorf("ps's %s line should show %q:\n%s", comp, w, ps.stdout)
				}
			}
		}
		r := cp.must(t, "logs", "kubelet", "--tail", "5")
		if n := len(strings.Split(strings.TrimSpace(r.stdout), "\n")); n < 2 || !strings.Contains(r.stdout, "kubelet") {
			t.Errorf("logs kubelet should print the unit's journal's last lines:\n%s", r)
		}
	})

	// The worker joins by the command, and is a systemd host too.
	tokOut := cp.must(t, "token", "create", "--print-join-command")
	joinCmd, _ := joinCommands(tokOut.stdout)
	if joinCmd == nil {
		t.Fatalf("token create --print-join-command printed no join command:\n%s", tokOut)
	}
	w.must(t, append(joinCmd, nodeArgs...)...)
	if got := strings.TrimSpace(w.exec(t, "systemctl", "is-active", "dk8s-kubelet.service").stdout); got != "active" {
		t.Errorf("the worker's kubelet unit is %q, want active", got)
	}
	if ps := w.must(t, "ps"); !strings.Contains(lineWith(ps.stdout, "kubelet "), "systemd") {
		t.Errorf("ps on the worker should show its kubelet under systemd:\n%s", ps.stdout)
	}

	deployEcho(t, mustKubectl(t))
	t.Run("kubectl exec, cp, logs, port-forward, debug, exec probes and hooks on the worker", func(t *testing.T) {
		assertKubectlVerbs(t, machineKubeconfig(t, cp), w.name, verbsImage, func(path string) string { return w.exec(t, "cat", path).stdout })
	})
	ip := strings.TrimSpace(mustKubectl(t)("get", "service", "echo", "-o", "jsonpath={.spec.clusterIP}"))
	serves := func(t *testing.T, when string) {
		t.Helper()
		assertServes(t, cp, ip, when)
	}
	ready := func(t *testing.T, when string, ms ...*machine) {
		t.Helper()
		for _, m := range ms {
			if !waitFor(4*time.Minute, func() bool { return nodeReady(kubectl, m.name) }) {
				out, _ := kubectl("get", "nodes")
				t.Fatalf("%s: node %s is not Ready:\n%s\n%s", when, m.name, out, m.exec(t, "journalctl", "--no-pager", "-n", "20", "-u", "dk8s-kubelet.service").stdout)
			}
		}
	}
	serves(t, "after start")

	// The control plane's pods: their containers by ID with restart counts,
	// which a crash or restart of the runtime or kubelet must not change.
	cpPods := func(t *testing.T) string {
		t.Helper()
		var out string
		// A pod still starting or ending would change between two readings.
		if !waitFor(2*time.Minute, func() bool {
			got, err := kubectl("get", "pods", "-A", "--field-selector", "spec.nodeName="+cp.name, "--sort-by=.metadata.name", "-o",
				`jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.metadata.deletionTimestamp}{range .status.containerStatuses[*]} {.containerID} ready={.ready} restarts={.restartCount}{end}{"\n"}{end}`)
			out = got
			return err == nil && !strings.Contains(got, "ready=false") && !strings.Contains(got, "Pending") && strings.Count(got, "Running") >= 4
		}) {
			t.Fatalf("the pods on %s did not settle:\n%s", cp.name, out)
		}
		return out
	}
	mainPID := func(t *testing.T, unit string) string {
		t.Helper()
		return strings.TrimSpace(cp.exec(t, "systemctl", "show", "--property=MainPID", "--value", unit).stdout)
	}
	samePods := func(t *testing.T, when, before string) {
		t.Helper()
		ready(t, when, cp)
		if after := cpPods(t); after != before {
			t.Errorf("%s: the pods' containers changed (they must outlive it):\nbefore:\n%s\nafter:\n%s", when, before, after)
		}
		serves(t, when)
	}

	for _, u := range units {
		t.Run("kill -9 of "+u+": systemd restarts it, pods kept", func(t *testing.T) {
			before, pid := cpPods(t), mainPID(t, u)
			if pid == "" || pid == "0" {
				t.Fatalf("%s has no main process", u)
			}
			if r := cp.exec(t, "kill", "-9", pid); r.code != 0 {
				t.Fatal(r)
			}
			if !waitFor(time.Minute, func() bool {
				p := mainPID(t, u)
				return p != pid && p != "0" && strings.TrimSpace(cp.exec(t, "systemctl", "is-active", u).stdout) == "active"
			}) {
				t.Fatalf("%s did not come back after kill -9:\n%s", u, cp.exec(t, "systemctl", "status", "--no-pager", u).stdout)
			}
			samePods(t, "kill -9 of "+u, before)
		})
	}

	t.Run("systemctl restart of each agent: pods kept", func(t *testing.T) {
		before := cpPods(t)
		for _, u := range units {
			if r := cp.exec(t, "systemctl", "restart", u); r.code != 0 {
				t.Fatalf("systemctl restart %s: %s", u, r)
			}
		}
		// kubelet may go once more with the runtime restarted under it;
		// systemd brings it back within seconds.
		var ps result
		if !waitFor(time.Minute, func() bool {
			ps = cp.dk8s(t, "ps")
			return ps.code == 0
		}) {
			t.Fatalf("ps after the restarts should show every part healthy:\n%s", ps)
		}
		samePods(t, "systemctl restart of the runtime and kubelet", before)
	})

	t.Run("a restart of Docker leaves the node's agents and pods running", func(t *testing.T) {
		before := cpPods(t)
		pids := map[string]string{}
		for _, u := range units {
			pids[u] = mainPID(t, u)
		}
		if r := cp.exec(t, "systemctl", "restart", "docker.service"); r.code != 0 {
			t.Fatalf("systemctl restart docker: %s", r)
		}
		for _, u := range units {
			if got := mainPID(t, u); got != pids[u] {
				t.Errorf("%s's process changed with Docker's restart: %s, was %s", u, got, pids[u])
			}
		}
		// The control plane is Docker's: back by its restart policy.
		if !waitFor(2*time.Minute, func() bool { return cp.dk8s(t, "ps").code == 0 }) {
			t.Fatalf("the control plane did not come back after Docker's restart:\n%s", cp.dk8s(t, "ps"))
		}
		samePods(t, "a restart of Docker", before)
	})

	t.Run("each machine rebooted comes back with no command", func(t *testing.T) {
		for _, m := range []*machine{cp, w} {
			start := time.Now()
			m.reboot(t)
			// Ready as its kubelet, started again, reports it: a node
			// status older than the reboot is the one before it.
			if !waitFor(4*time.Minute, func() bool { return readySince(kubectl, m.name, start) }) {
				t.Fatalf("%s is not Ready again after its reboot:\n%s", m.name, m.exec(t, "journalctl", "--no-pager", "-n", "20", "-u", "dk8s-kubelet.service").stdout)
			}
			ready(t, m.name+" rebooted", cp, w)
			t.Logf("%s rebooted: its node Ready by its restarted kubelet %.1fs after docker restart", m.name, time.Since(start).Seconds())
			mustKubectl(t)("rollout", "status", "deployment/echo", "--timeout=3m")
			serves(t, m.name+" rebooted")
		}
	})

	t.Run("stop stops the units, start brings the node back", func(t *testing.T) {
		r := cp.must(t, "stop")
		for _, u := range units {
			if !strings.Contains(r.stdout+r.stderr, u) {
				t.Errorf("stop should name %s:\n%s", u, r)
			}
			if got := strings.TrimSpace(cp.exec(t, "systemctl", "is-active", u).stdout); got != "inactive" {
				t.Errorf("after stop, %s is %q, want inactive", u, got)
			}
		}
		if ps := cp.dk8s(t, "ps"); ps.code == 0 || !strings.Contains(lineWith(ps.stdout, "kubelet "), "stopped") {
			t.Errorf("ps after stop should show kubelet stopped and exit non-zero:\n%s", ps)
		}
		cp.must(t, append([]string{"start"}, nodeArgs...)...)
		ready(t, "after stop and start", cp)
		serves(t, "after stop and start")
	})

	leftovers := func(t *testing.T, m *machine) {
		t.Helper()
		assertNothingLeft(t, m, "reset --purge", systemdNodeLeftovers)
	}

	t.Run("reset --purge of the worker and the control plane leaves nothing", func(t *testing.T) {
		if r := w.must(t, "reset", "--drain", "--purge", "--yes"); !strings.Contains(r.stderr, "dk8s-kubelet.service") {
			t.Errorf("reset of the worker should name the units it removed:\n%s", r)
		}
		leftovers(t, w)
		cp.must(t, "reset", "--purge", "--yes")
		leftovers(t, cp)
	})

	t.Run("a start after the purge makes a node again", func(t *testing.T) {
		r := cp.must(t, append([]string{"start"}, nodeArgs...)...)
		if !strings.Contains(r.stderr, "dk8s-kubelet.service installed") {
			t.Errorf("a start after the purge should install the units again:\n%s", r)
		}
		kubectl = adminKubectl(t, cp) // a new cluster, a new CA
		mustKubectl = failing(kubectl)
		ready(t, "a start after the purge", cp)
		if out := fmt.Sprint(mustKubectl(t)("get", "nodes", "--no-headers")); strings.Contains(out, w.name) {
			t.Errorf("a new cluster should not know the old worker:\n%s", out)
		}
	})
}

// assertServes checks, on machine m, that the echo Service at ip answers,
// once kube-proxy has programmed it there (before, a request would leave
// the machine by its default route), and that a pod resolves names by
// CoreDNS.
func assertServes(t *testing.T, m *machine, ip, when string) {
	t.Helper()
	if !waitFor(3*time.Minute, func() bool {
		return strings.Contains(m.exec(t, "iptables", "-t", "nat", "-S", "KUBE-SERVICES").stdout, ip+"/32")
	}) {
		t.Fatalf("%s: kube-proxy on %s never programmed the Service's ClusterIP %s", when, m.name, ip)
	}
	if body := fetchFrom(t, m, "http://"+ip+"/"); !strings.HasPrefix(body, "echo-") {
		t.Fatalf("%s: the Service %s answered %q, want a pod's name", when, ip, body)
	}
	// CoreDNS comes back after a reboot as any pod does, in its own
	// time: its answer is waited for.
	var body string
	if !waitFor(2*time.Minute, func() bool {
		body = fetchFrom(t, m, "http://"+ip+"/lookup?name=kubernetes.default")
		return body == "10.96.0.1"
	}) {
		t.Fatalf("%s: a pod resolved kubernetes.default to %q, want 10.96.0.1 (CoreDNS)", when, body)
	}
}

// readySince reports whether node is Ready as its kubelet reported at
// since or after: after a reboot, a status older than it is the one from
// before.
func readySince(kubectl func(...string) (string, error), node string, since time.Time) bool {
	out, err := kubectl("get", "node", node, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].lastHeartbeatTime}`)
	status, beat, _ := strings.Cut(strings.TrimSpace(out), " ")
	at, perr := time.Parse(time.RFC3339, beat)
	return err == nil && perr == nil && status == "True" && !at.Before(since.Truncate(time.Second))
}

// systemdNodeLeftovers is what reset --purge must leave of a node whose
// agents systemd ran: nothing.
var systemdNodeLeftovers = []leftCheck{
	sh("units", "ls /etc/systemd/system | none grep dk8s; systemctl list-units --all --no-legend 'dk8s-*'"),
	// Below /var/lib/dk8s: the directory itself is the machine's disk.
	sh("mounts", "none grep -E '/var/lib/dk8s/|/run/dk8s|/run/netns/' /proc/self/mountinfo"),
	sh("pods' network namespaces", "if [ -d /var/run/netns ]; then ls -A /var/run/netns; fi"),
	sh("iptables rules", `iptables-save | none grep -E 'KUBE-|FLANNEL|"dk8s"|10\.244\.'`),
	sh("network devices", "ip -o link show | none grep -E 'dk8s0|dk8s-svc|flannel|cni0'; ip -o link show type veth | none grep -v ' eth0@'"), // eth0: the machine's own
	{what: "kubelet", cmd: []string{"pgrep", "-a", "-x", "kubelet"}, matchExit1: true},
	{what: "the runtime", cmd: []string{"pgrep", "-af", "containerd --config /var/lib/dk8s"}, matchExit1: true},
	{what: "pod shims", cmd: []string{"pgrep", "-af", "containerd-shim.*-address /run/dk8s/"}, matchExit1: true},
	{what: "containers", cmd: []string{"docker", "ps", "-aq", "--filter", "name=dk8s-"}},
	// A container machine's /var/lib/dk8s is its disk, and stays; a
	// VM's goes.
	sh("files", "if [ -e /var/lib/dk8s ]; then ls -A /var/lib/dk8s; fi"),
}

// assertUnitsUp checks that each of units is enabled and active on m.
func assertUnitsUp(t *testing.T, m *machine, units []string) {
	t.Helper()
	for _, u := range units {
		for verb, want := range map[string]string{"is-enabled": "enabled", "is-active": "active"} {
			if got := strings.TrimSpace(m.exec(t, "systemctl", verb, u).stdout); got != want {
				t.Errorf("systemctl %s %s on %s: %q, want %q", verb, u, m.name, got, want)
			}
		}
	}
}
