package integration

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestHighlyAvailable is issue 11's "done when" on harness machines: three
// control planes and a worker; one control plane stopped, kubectl through
// the others and the worker's kubelet keep working, writes succeed, the
// marker is kept; restarted, its etcd member catches up; a second one
// stopped, writes fail clearly, and after recovery the marker reads back.
func TestHighlyAvailable(t *testing.T) {
	cps := []*machine{startMachine(t, "dk8s-it-ha1"), startMachine(t, "dk8s-it-ha2"), startMachine(t, "dk8s-it-ha3")}
	w := startMachine(t, "dk8s-it-haw")
	nodeArgs := []string{"--kubelet-binary", machineKubelet, "--mirror", machinePathMirror}
	cps[0].must(t, "pull", "--mirror", machineFlatMirror)
	cps[0].must(t, append([]string{"start", "--ha"}, nodeArgs...)...)

	r := cps[0].must(t, "token", "create", "--control-plane", "--print-join-command")
	joinCmd, _ := joinCommands(r.stdout)
	key := flagValue(joinCmd, "--certificate-key")
	if joinCmd == nil || len(key) != 64 || !strings.Contains(r.stdout, "--control-plane") {
		t.Fatalf("token create --control-plane --print-join-command:\n%s", r)
	}

	t.Run("a wrong certificate key is refused and nothing is made", func(t *testing.T) {
		bad := append([]string{}, joinCmd...)
		for i := range bad {
			if bad[i] == key {
				bad[i] = strings.Repeat("ab", 32)
			}
		}
		r := cps[1].dk8s(t, append(bad, nodeArgs...)...)
		if r.code == 0 || !strings.Contains(r.stderr, "does not open") {
			t.Errorf("a wrong key: want a refusal saying it does not open the certificates:\n%s", r)
		}
		assertNothingLeft(t, cps[1], "a refused join", dirAndContainers)
		if t.Failed() {
			t.FailNow()
		}
	})

	for _, m := range cps[1:] {
		r := m.must(t, append(joinCmd, nodeArgs...)...)
		if !strings.Contains(r.stderr, "added as a learner") || !strings.Contains(r.stderr, "node "+m.name+" is Ready") {
			t.Errorf("join --control-plane on %s should add its etcd member and end with its node Ready:\n%s", m.name, r)
		}
	}
	wr := cps[0].must(t, "token", "create", "--print-join-command")
	workerJoin, _ := joinCommands(wr.stdout)
	w.must(t, append(workerJoin, nodeArgs...)...)

	kubectls := map[string]func(...string) (string, error){}
	for _, m := range cps {
		kubectls[m.name] = adminKubectl(t, m)
	}
	kubectl := kubectls[cps[0].name]

	t.Run("three voting etcd members, four Ready nodes, every apiserver answers", func(t *testing.T) {
		if got := etcdVoters(t, cps[0]); len(got) != 3 {
			t.Errorf("etcd's voting members: %v, want the three control planes", got)
		}
		for _, m := range append(cps, w) {
			if !waitFor(3*time.Minute, func() bool { return nodeReady(kubectl, m.name) }) {
				out, _ := kubectl("get", "nodes")
				t.Fatalf("node %s is not Ready:\n%s", m.name, out)
			}
		}
		for name, k := range kubectls {
			if out, err := k("get", "nodes"); err != nil || strings.Count(out, " Ready ") != 4 {
				t.Errorf("kubectl through %s: %v\n%s", name, err, out)
			}
		}
		if ps := w.must(t, "ps"); !strings.Contains(ps.stdout, "kubelet") {
			t.Errorf("ps on the worker:\n%s", ps.stdout)
		}
	})

	mustWrite := func(k func(...string) (string, error), name string) {
		t.Helper()
		if out, err := k("create", "configmap", name, "--from-literal=kept=yes"); err != nil {
			t.Fatalf("writing %s: %v\n%s", name, err, out)
		}
	}
	reads := func(k func(...string) (string, error), name string) bool {
		out, err := k("get", "configmap", name, "-o", "jsonpath={.data.kept}")
		return err == nil && out == "yes"
	}
	mustWrite(kubectl, "marker")

	t.Run("one control plane stopped: the others answer and write, the worker stays Ready", func(t *testing.T) {
		stopMachine(t, cps[0])
		k := kubectls[cps[1].name]
		start := time.Now()
		if !waitFor(2*time.Minute, func() bool {
			_, err := k("create", "configmap", "after-one-down", "--from-literal=kept=yes")
			return err == nil
		}) {
			t.Fatal("writes through a remaining control plane did not succeed within 2 minutes")
		}
		t.Logf("writes through %s succeeded %.1fs after %s stopped", cps[1].name, time.Since(start).Seconds(), cps[0].name)
		if !reads(kubectls[cps[2].name], "marker") {
			t.Error("the marker should read back through the third control plane")
		}
		// The worker's kubelet reaches the apiservers through its
		// balancer: past the node controller's 40s grace it is still
		// Ready, its lease renewed since the stop.
		time.Sleep(45 * time.Second)
		ready, _ := k("get", "node", w.name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		renew, _ := k("-n", "kube-node-lease", "get", "lease", w.name, "-o", "jsonpath={.spec.renewTime}")
		at, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(renew))
		if ready != "True" || err != nil || !at.After(start) {
			t.Errorf("the worker should stay Ready, renewing its lease, while a control plane is down: Ready=%q, lease renewed %q\n%s", ready, renew, w.exec(t, "docker", "logs", "--tail", "20", "dk8s-apiserver-lb"))
		}
	})

	t.Run("restarted, its etcd member catches up", func(t *testing.T) {
		startStoppedMachine(t, cps[0])
		if !waitFor(3*time.Minute, func() bool { return reads(kubectl, "after-one-down") }) {
			t.Fatalf("the restarted control plane does not serve what was written while it was down")
		}
		if got := etcdVoters(t, cps[0]); len(got) != 3 {
			t.Errorf("etcd's voting members after the restart: %v", got)
		}
	})

	t.Run("two control planes stopped: writes fail clearly; recovered, the marker reads back", func(t *testing.T) {
		stopMachine(t, cps[0])
		stopMachine(t, cps[1])
		k := kubectls[cps[2].name]
		// The apiserver answers, with etcd's own error, within its
		// request timeout.
		out, err := k("--request-timeout=90s", "create", "configmap", "without-quorum", "--from-literal=kept=yes")
		if err == nil || !strings.Contains(out, "etcdserver") && !strings.Contains(out, "Timeout") {
			t.Fatalf("a write with two of three etcd members down should fail with etcd's error:\n%s", out)
		}
		t.Logf("a write without quorum: %s", strings.TrimSpace(out))
		// And the operator sees why: two members unreachable.
		st := cps[2].dk8s(t, "etcd", "status")
		if st.code == 0 || strings.Count(st.stdout+st.stderr, "unreachable") < 2 {
			t.Errorf("etcd status with two members down should say they are unreachable and exit non-zero:\n%s", st)
		}
		startStoppedMachine(t, cps[1])
		startStoppedMachine(t, cps[0])
		if !waitFor(4*time.Minute, func() bool { return reads(k, "marker") && reads(k, "after-one-down") }) {
			t.Fatal("after recovery the marker should read back")
		}
		if !waitFor(2*time.Minute, func() bool {
			_, err := k("create", "configmap", "after-recovery", "--from-literal=kept=yes")
			return err == nil
		}) {
			t.Fatal("writes should succeed again after recovery")
		}
	})

	t.Run("a control plane's reset leaves etcd first, and refuses to cost the others their quorum", func(t *testing.T) {
		r := cps[2].dk8s(t, "reset", "--purge", "--yes")
		if r.code != 0 || !strings.Contains(r.stderr, "etcd member "+cps[2].name) {
			t.Fatalf("reset of the third control plane should remove its etcd member first:\n%s", r)
		}
		if got := etcdVoters(t, cps[0]); len(got) != 2 {
			t.Errorf("etcd's voting members after the reset: %v, want the two left", got)
		}
		k := kubectls[cps[0].name]
		if !waitFor(time.Minute, func() bool {
			_, err := k("create", "configmap", "after-a-reset", "--from-literal=kept=yes")
			return err == nil
		}) {
			t.Fatal("the two control planes left should take writes")
		}
		// A member that left could not start on its data again: a reset
		// that keeps the directory is refused, with what to do instead.
		r = cps[0].dk8s(t, "reset")
		if r.code == 0 || !strings.Contains(r.stderr, "dk8s stop") || !strings.Contains(r.stderr, "reset --purge") {
			t.Errorf("a plain reset of one of several etcd members should be refused, naming stop and reset --purge:\n%s", r)
		}
		// Of two members, the one left could not make a quorum alone.
		stopMachine(t, cps[1])
		r = cps[0].dk8s(t, "reset", "--purge", "--yes")
		if r.code == 0 || !strings.Contains(r.stderr, "quorum") || !strings.Contains(r.stderr, "--force") {
			t.Errorf("a reset that would leave etcd without a quorum should be refused, naming --force:\n%s", r)
		}
		if ls := cps[0].exec(t, "ls", "/var/lib/dk8s/etcd/member"); ls.code != 0 {
			t.Errorf("a refused purge should keep etcd's data:\n%s", ls)
		}
		if ps := cps[0].exec(t, "docker", "inspect", "-f", "{{.State.Running}}", "dk8s-etcd"); strings.TrimSpace(ps.stdout) != "true" {
			t.Errorf("a refused reset should leave etcd running:\n%s", ps)
		}
		startStoppedMachine(t, cps[1])
		if !waitFor(3*time.Minute, func() bool { return reads(k, "marker") }) {
			t.Fatal("the marker should read back once the second control plane is back")
		}
	})
}

// etcdVoters lists the names of etcd's voting members, as m's etcd sees
// them.
func etcdVoters(t *testing.T, m *machine) []string {
	t.Helper()
	var out result
	if !waitFor(time.Minute, func() bool {
		out = m.exec(t, "docker", "exec", "dk8s-etcd", "etcdctl", "--endpoints", "https://127.0.0.1:2379",
			"--cacert", "/etc/dk8s/pki/etcd/ca.crt", "--cert", "/etc/dk8s/pki/etcd/server.crt", "--key", "/etc/dk8s/pki/etcd/server.key",
			"member", "list", "-w", "json")
		return out.code == 0
	}) {
		t.Fatalf("etcdctl member list on %s:\n%s", m.name, out)
	}
	var list struct {
		Members []struct {
			Name      string `json:"name"`
			IsLearner bool   `json:"isLearner"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(out.stdout), &list); err != nil {
		t.Fatalf("member list: %v\n%s", err, out.stdout)
	}
	var voters []string
	for _, mem := range list.Members {
		if !mem.IsLearner && mem.Name != "" {
			voters = append(voters, mem.Name)
		}
	}
	return voters
}

// stopMachine shuts machine m down (its engine stops its containers) and
// keeps it, to start again.
func stopMachine(t testing.TB, m *machine) {
	t.Helper()
	if out, err := exec.Command("docker", "stop", m.name).CombinedOutput(); err != nil {
		t.Fatalf("stopping machine %s: %v\n%s", m.name, err, out)
	}
}

func startStoppedMachine(t testing.TB, m *machine) {
	t.Helper()
	if out, err := exec.Command("docker", "start", m.name).CombinedOutput(); err != nil {
		t.Fatalf("starting machine %s: %v\n%s", m.name, err, out)
	}
	m.waitDocker(t)
}
