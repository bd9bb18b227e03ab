package integration

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// smallMachineLimit is the memory of the small VPS the small profile is
// for, swap included: its whole node, Docker's engine and containerd too,
// lives in it.
const smallMachineLimit = "1g"

// TestSmallProfile makes a node with --profile small on a machine of
// 1 GiB (its Docker engine inside the limit too), runs a workload behind a
// Service that a pod reaches by its DNS name, and checks what the profile
// sets, that a rerun keeps it (and, in 1 GiB, does not starve the cluster
// it checks), and that --profile default takes it back.
func TestSmallProfile(t *testing.T) {
	m := startMachineWithMemory(t, "dk8s-it-small", smallMachineLimit)
	m.must(t, "pull", "--mirror", machineFlatMirror)
	if r := m.must(t, "start", "--profile", "small", "--kubelet-binary", machineKubelet, "--mirror", machinePathMirror); strings.Contains(r.stderr, "--profile small") {
		t.Errorf("a start with --profile small should not suggest it:\n%s", r)
	}
	kubectl := adminKubectl(t, m)
	mustKubectl := func(args ...string) string {
		t.Helper()
		out, err := kubectl(args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	if got := goEnvOfNode(t, m); got != allGOGC("25") {
		t.Errorf("with --profile small every Go program of the node should run with GOGC=25; got:\n%s", got)
	}
	if marker := m.exec(t, "cat", "/var/lib/dk8s/dk8s-cluster.yaml").stdout; !strings.Contains(marker, "profile: small") {
		t.Errorf("the cluster's marker should keep the profile:\n%s", marker)
	}

	deployEcho(t, mustKubectl)
	// Once kube-proxy has programmed the new Service.
	if !waitFor(time.Minute, func() bool { return echoAnswersByName(t, m, mustKubectl) }) {
		t.Fatalf("the echo workload did not answer by its Service's DNS name\n%s", mustKubectl("get", "pods", "-A", "-o", "wide"))
	}

	// Reruns without --profile keep the cluster's: nothing is replaced.
	before := m.exec(t, "docker", "ps", "-q", "--no-trunc").stdout
	for i := 0; i < 3; i++ {
		m.must(t, "start", "--kubelet-binary", machineKubelet, "--mirror", machinePathMirror)
	}
	if after := m.exec(t, "docker", "ps", "-q", "--no-trunc").stdout; after != before {
		t.Errorf("a rerun without --profile replaced containers:\nbefore %s\nafter %s", before, after)
	}

	// --profile default takes it back, add-ons too, and the workload stays.
	// On a machine of 1 GiB, start says what the small profile is for.
	if r := m.must(t, "start", "--profile", "default", "--kubelet-binary", machineKubelet, "--mirror", machinePathMirror); !strings.Contains(r.stderr, "memory: this host has 1024 MiB of memory") {
		t.Errorf("a default start on a machine of 1 GiB should suggest --profile small:\n%s", r)
	}
	if !waitFor(2*time.Minute, func() bool { return goEnvOfNode(t, m) == allGOGC("none") }) {
		t.Errorf("with --profile default no program of the node should have GOGC set; got:\n%s", goEnvOfNode(t, m))
	}
	if marker := m.exec(t, "cat", "/var/lib/dk8s/dk8s-cluster.yaml").stdout; strings.Contains(marker, "profile:") {
		t.Errorf("the default profile should leave no profile in the marker:\n%s", marker)
	}
	if !waitFor(time.Minute, func() bool { return echoAnswersByName(t, m, mustKubectl) }) {
		t.Errorf("the echo workload did not answer after the change of profile")
	}
	if mem := machineCgroup(t, m); mem.oomKills != 0 {
		t.Errorf("the kernel killed %d processes of the 1 GiB machine for memory", mem.oomKills)
	}
}

// nodeGoPrograms are the node's Go programs as the kernel names them, and
// the pattern of pgrep -f that finds dk8s's pod runtime among the machine's
// two containerds.
var nodeGoPrograms = []string{"etcd", "kube-apiserver", "kube-controller", "kube-scheduler", "kubelet", "kube-proxy", "coredns", "flanneld"}

// goEnvOfNode is a line per Go program of the node in m: its name and its
// GOGC ("none" when unset).
func goEnvOfNode(t testing.TB, m *machine) string {
	t.Helper()
	script := `gogc() { if [ -z "$2" ]; then echo "$1: not running"; return; fi; v=$(tr '\0' '\n' < /proc/$2/environ | grep '^GOGC=' || echo none); echo "$1: $v"; }
for n in ` + strings.Join(nodeGoPrograms, " ") + `; do
  pid=$(pgrep -x $n | head -1); if [ -z "$pid" ]; then echo "$n: not running"; else gogc $n $pid; fi
done
pid=$(pgrep -f 'containerd --config /var/lib/dk8s' | head -1); gogc containerd "$pid"
pid=$(pgrep -f 'dk8s csr-approver' | head -1); gogc csr-approver "$pid"`
	return strings.TrimSpace(m.exec(t, "sh", "-c", script).stdout)
}

// allGOGC is what goEnvOfNode says when every program has GOGC v.
func allGOGC(v string) string {
	if v != "none" {
		v = "GOGC=" + v
	}
	var lines []string
	for _, n := range append(append([]string{}, nodeGoPrograms...), "containerd", "csr-approver") {
		lines = append(lines, n+": "+v)
	}
	return strings.Join(lines, "\n")
}

// echoAnswersByName tells whether an echo pod, asked from m's host, gets
// an answer from the echo Service by its DNS name: the Deployment, the
// Service (kube-proxy) and DNS (CoreDNS) all work.
func echoAnswersByName(t testing.TB, m *machine, kubectl func(...string) string) bool {
	t.Helper()
	ip := strings.TrimSpace(kubectl("get", "pods", "-l", "app=echo", "-o", "jsonpath={.items[0].status.podIP}"))
	if ip == "" {
		return false
	}
	r := m.exec(t, "curl", "-fsS", "--max-time", "5", "http://"+ip+":8080/fetch?url=http://echo.default.svc.cluster.local/")
	return r.code == 0 && strings.HasPrefix(strings.TrimSpace(r.stdout), "echo-")
}

// cgroupMemory is what a machine's memory cgroup says of it.
type cgroupMemory struct {
	limit, usage, peak, inactiveFile, rss uint64
	oomKills                              uint64
}

// workingSet is usage less the page cache the kernel may take back first,
// as kubelet and 'kubectl top' count a container's memory.
func (c cgroupMemory) workingSet() uint64 {
	if c.inactiveFile > c.usage {
		return 0
	}
	return c.usage - c.inactiveFile
}

// machineCgroupDir is the host's memory cgroup of machine m.
func machineCgroupDir(t testing.TB, m *machine) string {
	t.Helper()
	for _, pattern := range []string{"/sys/fs/cgroup/memory/" + m.id, "/sys/fs/cgroup/memory/*/" + m.id} {
		if dirs, _ := filepath.Glob(pattern); len(dirs) == 1 {
			return dirs[0]
		}
	}
	t.Fatalf("no memory cgroup of machine %s (%s) under /sys/fs/cgroup/memory: this host needs cgroup v1's memory controller", m.name, m.id)
	return ""
}

// machineCgroup reads m's memory cgroup (cgroup v1, as on these hosts).
func machineCgroup(t testing.TB, m *machine) cgroupMemory {
	t.Helper()
	dir := machineCgroupDir(t, m)
	num := func(file string) uint64 {
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		return n
	}
	c := cgroupMemory{limit: num("memory.limit_in_bytes"), usage: num("memory.usage_in_bytes"), peak: num("memory.max_usage_in_bytes")}
	for file, keys := range map[string]map[string]*uint64{
		"memory.stat":        {"total_inactive_file": &c.inactiveFile, "total_rss": &c.rss},
		"memory.oom_control": {"oom_kill": &c.oomKills},
	} {
		f, err := os.Open(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), " ")
			if p, ok := keys[k]; ok {
				*p, _ = strconv.ParseUint(v, 10, 64)
			}
		}
		f.Close()
	}
	return c
}
