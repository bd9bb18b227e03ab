package app

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/containers/containerstest"
)

// psCluster is a control plane in dir with a row of each kind: etcd and
// the apiserver running (their health probes fail: there is no PKI and
// nothing listening), the controller-manager exited, the scheduler absent.
func psCluster(dir string) *containerstest.Engine {
	etcd := fakeContainer("dk8s-etcd", "registry.k8s.io/etcd:3.6.5-0", dir, "running")
	etcd.RestartCount = 2
	return fakeHost(etcd,
		fakeContainer("dk8s-apiserver", "registry.k8s.io/kube-apiserver:v1.36.2", dir, "running"),
		fakeContainer("dk8s-controller-manager", "registry.k8s.io/kube-controller-manager:v1.36.2", dir, "exited"),
	)
}

func TestPsTable(t *testing.T) {
	dir := t.TempDir()
	stdout, stderr, err := runFake(t, psCluster(dir), "ps", "--dir", dir)
	var exit ExitError
	if !errors.As(err, &exit) || exit.Code != 1 {
		t.Errorf("ps with unhealthy and absent components: error %v, want exit status 1", err)
	}
	if stderr != "" {
		t.Errorf("ps wrote messages: %q", stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	want := [][]string{
		{"COMPONENT", "SUPERVISOR", "NAME", "STATE", "HEALTH", "RESTARTS", "VERSION", "UPTIME", "ENDPOINT"},
		{"etcd", "docker", "dk8s-etcd", "running", "unhealthy", "2", "3.6.5-0", "1m3", "https://127.0.0.1:2379/health?serializable=true"},
		{"kube-apiserver", "docker", "dk8s-apiserver", "running", "unhealthy", "0", "v1.36.2", "1m3", "https://127.0.0.1:6443/readyz"},
		{"kube-controller-manager", "docker", "dk8s-controller-manager", "exited", "-", "0", "v1.36.2", "-", "https://127.0.0.1:10257/healthz"},
		{"kube-scheduler", "docker", "dk8s-scheduler", "absent", "-", "0", "-", "-", "https://127.0.0.1:10259/healthz"},
		{"csr-approver", "docker", "dk8s-csr-approver", "absent", "-", "0", "-", "-", "http://127.0.0.1:10270/healthz"},
		{"etcd-snapshotter", "docker", "dk8s-etcd-snapshotter", "absent", "-", "0", "-", "-", "http://127.0.0.1:10271/healthz"},
	}
	if len(lines) != len(want) {
		t.Fatalf("ps printed %d lines, want %d:\n%s", len(lines), len(want), stdout)
	}
	for i, w := range want {
		got := strings.Fields(lines[i])
		if len(got) != len(w) {
			t.Errorf("line %d: %q, want the columns %q", i, lines[i], w)
			continue
		}
		for j := range w {
			// Uptime is 1m30s, or a second more on a slow machine.
			if got[j] != w[j] && !(w[j] == "1m3" && strings.HasPrefix(got[j], w[j])) {
				t.Errorf("line %d, %s: %q, want %q\n%s", i, want[0][j], got[j], w[j], stdout)
			}
		}
	}
}

func TestPsJSON(t *testing.T) {
	dir := t.TempDir()
	stdout, _, err := runFake(t, psCluster(dir), "ps", "--dir", dir, "-o", "json")
	var exit ExitError
	if !errors.As(err, &exit) || exit.Code != 1 {
		t.Errorf("ps -o json with unhealthy components: error %v, want exit status 1", err)
	}
	var rows []struct {
		Component, Container, State, Health, Version string
		Healthy                                      bool
		Restarts, UptimeSeconds                      int
	}
	if err := json.Unmarshal([]byte(stdout), &rows); err != nil {
		t.Fatalf("ps -o json printed no JSON array: %v\n%s", err, stdout)
	}
	if len(rows) != 6 {
		t.Fatalf("ps -o json: %d rows, want 6:\n%s", len(rows), stdout)
	}
	etcd, cm, sched := rows[0], rows[2], rows[3]
	if etcd.Component != "etcd" || etcd.State != "running" || etcd.Healthy || !strings.HasPrefix(etcd.Health, "unhealthy: ") ||
		etcd.Restarts != 2 || etcd.Version != "3.6.5-0" || etcd.UptimeSeconds < 90 {
		t.Errorf("etcd's row: %+v", etcd)
	}
	if cm.Component != "kube-controller-manager" || cm.State != "exited" || cm.Healthy || cm.Health != "-" || cm.UptimeSeconds != 0 {
		t.Errorf("the controller-manager's row: %+v", cm)
	}
	if sched.Component != "kube-scheduler" || sched.Container != "dk8s-scheduler" || sched.State != "absent" || sched.Healthy {
		t.Errorf("the scheduler's row: %+v", sched)
	}
}

func TestPsRefusesAnotherDirsContainers(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	stdout, _, err := runFake(t, psCluster(other), "ps", "--dir", dir)
	want := "dk8s-etcd belongs to the control plane kept in " + other + ", not " + dir + ": pass --dir " + other
	if err == nil || err.Error() != want || stdout != "" {
		t.Errorf("ps of another directory's cluster: error %v, want %q; output %q", err, want, stdout)
	}
}

func TestLogs(t *testing.T) {
	dir := t.TempDir()
	fake := psCluster(dir)
	fake.Logs = map[string]string{"dk8s-apiserver": "I0101 serving on 6443\nI0101 ready\n"}
	for _, name := range []string{"kube-apiserver", "apiserver", "dk8s-apiserver"} {
		stdout, stderr, err := runFake(t, fake, "logs", name, "--tail", "2")
		if err != nil || stdout != fake.Logs["dk8s-apiserver"] || stderr != "" {
			t.Errorf("logs %s: %v, stdout %q, stderr %q; want the container's logs", name, err, stdout, stderr)
		}
	}

	_, _, err := runFake(t, fake, "logs", "kube-proxy")
	want := `unknown component "kube-proxy": use one of etcd, kube-apiserver, kube-controller-manager, kube-scheduler, csr-approver, etcd-snapshotter, containerd, kubelet`
	if err == nil || err.Error() != want {
		t.Errorf("logs of an unknown component: error %v, want %q", err, want)
	}

	_, _, err = runFake(t, fake, "logs", "kube-scheduler")
	want = "kube-scheduler has no container: is the cluster started ('dk8s start')?"
	if err == nil || err.Error() != want {
		t.Errorf("logs of an absent component: error %v, want %q", err, want)
	}
	if m := fake.Mutations("create", "start", "stop", "remove"); len(m) != 0 {
		t.Errorf("logs changed containers: %v", m)
	}

	// The host's container is read whatever directory its cluster is kept
	// in: logs takes no --dir to pick it by.
	if _, _, err := runFake(t, fake, "logs", "etcd", "--dir", dir); err == nil || err.Error() != "unknown flag: --dir" {
		t.Errorf("logs --dir: error %v, want unknown flag: --dir", err)
	}
}
