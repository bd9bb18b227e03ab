package integration

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dk8s/dk8s/pkg/containers"
)

// Machines: several hosts on this one, for the tests of a cluster of more
// than one (workers joining). A machine is a container of the harness's
// machine image (test/harness/machines.sh) running its own Docker engine,
// with this host's /usr bound read-only (the same dockerd, containerd, runc,
// iptables and CNI plugins), its own cgroups, its own disks as volumes, and
// an address on the Docker network dk8s-machines, where the machines reach
// each other and the host, and nothing beyond.

// The harness's mirrors as a machine sees them: the same storage as
// flatMirror and pathMirror, served read-only on the network's gateway.
const (
	machineFlatMirror = "172.29.0.1:5001/google_containers"
	machinePathMirror = "172.29.0.1:5002/..."
	// machineAliyunMirror is flat and holds registry.k8s.io's images
	// alone, as Aliyun's google_containers does: no flannel.
	machineAliyunMirror = "172.29.0.1:5001/aliyun/google_containers"
)

const (
	machineNet      = "dk8s-machines"
	machineNetPre   = "172.29.0." // the network's /24; .1 is the host
	machineLabel    = "dk8s-harness.machine"
	machineDK8s     = "/opt/dk8s/dk8s"
	machineLock     = "/opt/dk8s/test.lock"
	machineKubelet  = "/opt/dk8s/kubelet"
	machineDockerUp = 2 * time.Minute
)

// Each disk a machine keeps across reboots: Docker's and containerd's
// stores, and dk8s's and kubelet's directories, where overlay on the
// machine's own overlay root fails with "invalid argument".
var machineDisks = map[string]string{
	"docker":     "/var/lib/docker",
	"containerd": "/var/lib/containerd",
	"dk8s":       "/var/lib/dk8s",
	"kubelet":    "/var/lib/kubelet",
}

func TestMachines(t *testing.T) {
	_, rel := harness(t)
	m1 := startMachine(t, "dk8s-machine-1")
	m2 := startMachine(t, "dk8s-machine-2")

	t.Run("traffic from the machines stays on this host", func(t *testing.T) {
		// machines.sh's guard: a packet from a machine forwarded anywhere
		// but to another machine is refused. Checked on the host: a packet
		// sent out to prove it would leave this host were the guard missing.
		rule := []string{"-C", "DOCKER-USER", "-i", machineNet, "!", "-o", machineNet, "-j", "REJECT"}
		if out, err := exec.Command("iptables", rule...).CombinedOutput(); err != nil {
			t.Fatalf("iptables %s: %v %s: the harness (test/harness/machines.sh) should refuse traffic from the machines to anywhere but each other", strings.Join(rule, " "), err, out)
		}
	})

	t.Run("dk8s pulls through the mirror on the gateway", func(t *testing.T) {
		r := m1.dk8s(t, "pull", "--mirror", machineFlatMirror)
		if r.code != 0 {
			t.Fatalf("pull in %s failed:\n%s", m1.name, r)
		}
		for _, img := range rel.Images {
			line := lineWith(r.stdout, img.Name)
			if !strings.Contains(line, "pulled") || !strings.Contains(line, "verified") || !strings.Contains(line, "172.29.0.1:5001") {
				t.Errorf("summary line for %s = %q, want it pulled from 172.29.0.1:5001 and verified", img.Name, line)
			}
		}
		// Into the machine's engine: dk8s there sees the set, the other
		// machine's sees none of it.
		for _, m := range []*machine{m1, m2} {
			r := m.dk8s(t, "images", "--mirror", machineFlatMirror)
			if r.code != 0 {
				t.Fatalf("images in %s: %s", m.name, r)
			}
			for _, img := range rel.Images {
				// The last two columns: PRESENT and VERIFIED.
				f := append([]string{"", ""}, strings.Fields(lineWith(r.stdout, img.Name))...)
				present, verified := f[len(f)-2], f[len(f)-1]
				if m == m1 && (present != "yes" || verified != "verified") {
					t.Errorf("images in %s: %s should be present and verified:\n%s", m.name, img.Name, r.stdout)
				}
				if m == m2 && present != "no" {
					t.Errorf("images in %s: %s should be absent:\n%s", m.name, img.Name, r.stdout)
				}
			}
		}
	})

	// A service of machine 1's own, supervised by its engine as dk8s
	// supervises the control plane: on the host network, restarted always.
	const port = "8081"
	if r := m1.exec(t, "docker", "run", "-d", "--name", "echo", "--network", "host", "--restart", "always",
		"-e", "PORT="+port, machineFlatMirror+"/dk8s-echo:1.0"); r.code != 0 {
		t.Fatalf("starting the echo service in %s: %s", m1.name, r)
	}
	url := "http://" + m1.addr + ":" + port + "/"
	answers := func(when string) {
		t.Helper()
		var r result
		if !waitFor(time.Minute, func() bool {
			r = m2.exec(t, "curl", "-fsS", "--max-time", "5", url)
			return r.code == 0
		}) {
			t.Fatalf("%s: %s should answer from %s:\n%s", when, url, m2.name, r)
		}
		// Host network: the service's host name is the machine's.
		if got := strings.TrimSpace(r.stdout); got != m1.name {
			t.Fatalf("%s: %s answered %q, want %q", when, url, got, m1.name)
		}
	}
	answers("after docker run")

	t.Run("the machine's containers are in the machine's cgroups", func(t *testing.T) {
		r := m1.exec(t, "docker", "inspect", "-f", "{{.Id}}", "echo")
		if r.code != 0 {
			t.Fatal(r)
		}
		inner := strings.TrimSpace(r.stdout)
		dirs := cgroupDirs(t, inner)
		if len(dirs) == 0 {
			t.Fatalf("no cgroup of %s's container %s on the host under /sys/fs/cgroup", m1.name, inner)
		}
		for _, d := range dirs {
			if !strings.Contains(d, m1.id) {
				t.Errorf("%s's container has the cgroup %s, outside the machine's own (%s)", m1.name, d, m1.id)
			}
		}
	})

	// A reboot: /run starts empty, the address stays, the engine brings
	// back what restarts always.
	if r := m1.exec(t, "touch", "/run/before-reboot"); r.code != 0 {
		t.Fatal(r)
	}
	m1.reboot(t)
	if r := m1.exec(t, "test", "-e", "/run/before-reboot"); r.code == 0 {
		t.Fatalf("%s's /run outlived the reboot", m1.name)
	}
	if r := m1.exec(t, "ip", "-4", "-o", "addr", "show", "eth0"); !strings.Contains(r.stdout, " "+m1.addr+"/") {
		t.Fatalf("%s should keep its address %s across a reboot:\n%s", m1.name, m1.addr, r)
	}
	answers("after a reboot")
}

// machine is one host of a multi-machine test.
type machine struct {
	name string // the container's name and the machine's host name
	addr string // its address on dk8s-machines, kept across reboots
	id   string // the container's ID, which names its cgroups on the host
	// systemd: its PID 1 is systemd, which starts its Docker engine.
	systemd bool
	// vm, for a machine that is a virtual machine (vmhost_test.go), which
	// is reached by SSH rather than docker exec.
	vm *vmHost
}

// machineAddrs serializes picking addresses, for tests that start machines
// from several goroutines.
var machineAddrs sync.Mutex

// startMachine starts a machine named name, waits for its Docker engine and
// removes it with its disks when the test ends (unless
// DK8S_KEEP_MACHINES=1, to look at it after a failure). Its PID 1 is
// Docker's engine: a host without systemd, where dk8s supervises the node's
// agents with Docker.
func startMachine(t testing.TB, name string) *machine {
	t.Helper()
	return bootMachine(t, name, false)
}

// startSystemdMachine starts a machine that boots systemd, as most hosts do:
// systemd is its PID 1 and starts its Docker engine by Debian's units, and
// dk8s there runs the node's agents as systemd units.
func startSystemdMachine(t testing.TB, name string) *machine {
	t.Helper()
	return bootMachine(t, name, true)
}

// startMachineWithMemory starts a machine as startMachine does, whose
// whole (its Docker engine, containerd, shims, and all it runs) lives in a
// memory cgroup of limit bytes, swap included: a small VPS.
func startMachineWithMemory(t testing.TB, name, limit string) *machine {
	t.Helper()
	return bootMachine(t, name, false, "--memory", limit, "--memory-swap", limit)
}

func bootMachine(t testing.TB, name string, systemd bool, extra ...string) *machine {
	t.Helper()
	if testLock == "" {
		t.Fatal("DK8S_TEST_LOCK is not set: run the integration tests with 'make test', which brings up the harness (test/harness/up.sh)")
	}
	cache := filepath.Dir(testLock)
	b, err := os.ReadFile(filepath.Join(cache, "machine.image"))
	if err != nil {
		t.Fatalf("the harness names no machine image (%v): bring it up with test/harness/up.sh, which runs machines.sh", err)
	}
	image := strings.TrimSpace(string(b))
	kubelet := filepath.Join(cache, "kubelet")
	if _, err := os.Stat(kubelet); err != nil {
		t.Fatalf("the harness's kubelet: %v", err)
	}

	removeMachine(t, cache, name) // an interrupted run's: these names are the test's alone
	if os.Getenv("DK8S_KEEP_MACHINES") == "1" {
		t.Cleanup(func() {
			t.Logf("machine %s kept (DK8S_KEEP_MACHINES=1); remove it with: docker rm -f %s && docker volume rm $(docker volume ls -q --filter label=%s=%s) && rm -r %s", name, name, machineLabel, name, filepath.Join(cache, "machines", name))
		})
	} else {
		t.Cleanup(func() { removeMachine(t, cache, name) })
	}
	// The machine's dk8s is a copy of the test's, which goes when the test
	// run ends: a kept machine must still boot, and Docker binds every
	// source again at each start (and at each docker cp).
	dir := filepath.Join(cache, "machines", name)
	bin := filepath.Join(dir, "dk8s")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(dk8sBin, bin); err != nil {
		t.Fatalf("the machine's dk8s: %v", err)
	}

	args := []string{"run", "-d", "--name", name, "--hostname", name, "--label", machineLabel + "=" + name,
		"--network", machineNet}
	// Root here may lack SYS_RESOURCE in its bounding set (a container
	// host, as the test machines are): --privileged fails there ("unable to
	// apply caps"), so grant every capability root has, as dk8s does.
	if missing := containers.MissingCapabilities(); len(missing) == 0 {
		args = append(args, "--privileged")
	} else {
		args = append(args, "--cap-add", "ALL")
		for _, c := range missing {
			args = append(args, "--cap-drop", c)
		}
	}
	args = append(args,
		"--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
		// /proc/sys writable: kube-proxy and kubelet set sysctls.
		"--security-opt", "systempaths=unconfined",
		"--device-cgroup-rule", "a *:* rwm",
		// Its own cgroup root (machine-init makes it writable): with the
		// host's, two machines' kubelets would share one kubepods.
		"--cgroupns", "private",
		"-v", "/usr:/usr:ro",
		// A fresh /run at each boot, as a host's: dockerd's pid file and
		// sockets do not outlive a reboot. /tmp as a host's: programs run
		// from it.
		"--tmpfs", "/run:mode=755", "--tmpfs", "/tmp:exec,mode=1777",
		"-v", bin+":"+machineDK8s+":ro",
		"-v", kubelet+":"+machineKubelet+":ro",
		"-v", testLock+":"+machineLock+":ro",
		// A reboot lets the engine stop its containers, as a host's
		// shutdown does, before Docker kills it.
		"--restart", "always", "--stop-timeout", "30")
	if systemd {
		// As systemd wants a container to run it: told it is one, stopped
		// by the signal that shuts it down cleanly, /run/lock its own.
		args = append(args, "-e", "DK8S_MACHINE_INIT=systemd", "-e", "container=docker",
			"--stop-signal", "SIGRTMIN+3", "--tmpfs", "/run/lock")
	}
	if _, err := os.Stat("/dev/kmsg"); err == nil {
		args = append(args, "--device", "/dev/kmsg") // kubelet reads it; machine-init links the console otherwise
	}
	args = append(args, extra...)
	for disk, path := range machineDisks {
		vol := name + "-" + disk
		if out, err := exec.Command("docker", "volume", "create", "--label", machineLabel+"="+name, vol).CombinedOutput(); err != nil {
			t.Fatalf("creating the volume %s: %v\n%s", vol, err, out)
		}
		args = append(args, "-v", vol+":"+path)
	}

	machineAddrs.Lock()
	addr := freeMachineAddr(t)
	start := time.Now()
	out, err := exec.Command("docker", append(args, "--ip", addr, image)...).CombinedOutput()
	machineAddrs.Unlock()
	if err != nil {
		t.Fatalf("starting machine %s: %v\n%s", name, err, out)
	}
	m := &machine{name: name, addr: addr, id: strings.TrimSpace(string(out)), systemd: systemd}
	m.waitDocker(t)
	t.Logf("machine %s at %s: its Docker engine answered %.1fs after docker run", name, addr, time.Since(start).Seconds())
	return m
}

// freeMachineAddr picks an address on dk8s-machines that no container
// holds or was given, running or not: a machine keeps its address across
// reboots, as a host's is fixed, where Docker would hand out another.
func freeMachineAddr(t testing.TB) string {
	t.Helper()
	used := map[string]bool{}
	out, err := exec.Command("docker", "network", "inspect", "-f", "{{range .Containers}}{{.IPv4Address}} {{end}}", machineNet).Output()
	if err != nil {
		t.Fatalf("the Docker network %s: %v (test/harness/machines.sh makes it)", machineNet, err)
	}
	for _, a := range strings.Fields(string(out)) {
		used[strings.Split(a, "/")[0]] = true
	}
	ids, err := exec.Command("docker", "ps", "-aq").Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	if ids := strings.Fields(string(ids)); len(ids) > 0 {
		f := fmt.Sprintf(`{{with index .NetworkSettings.Networks %q}}{{with .IPAMConfig}}{{.IPv4Address}}{{end}}{{end}}`, machineNet)
		out, err := exec.Command("docker", append([]string{"inspect", "-f", f}, ids...)...).Output()
		if err != nil {
			t.Fatalf("docker inspect: %v", err)
		}
		for _, a := range strings.Fields(string(out)) {
			used[a] = true
		}
	}
	for i := 10; i < 250; i++ {
		if a := fmt.Sprintf("%s%d", machineNetPre, i); !used[a] {
			return a
		}
	}
	t.Fatalf("no free address left on %s", machineNet)
	return ""
}

// removeMachine removes the machine named name, its disks and its files
// under the harness's cache, if the harness made them; it refuses to touch
// a container or volume of that name that it did not.
func removeMachine(t testing.TB, cache, name string) {
	t.Helper()
	label, err := exec.Command("docker", "inspect", "--type", "container", "-f", fmt.Sprintf("{{index .Config.Labels %q}}", machineLabel), name).Output()
	if err == nil {
		if strings.TrimSpace(string(label)) != name {
			t.Fatalf("a container named %s exists that is not a machine of the harness's: it is left alone, and the test cannot use the name", name)
		}
		if out, err := exec.Command("docker", "rm", "-f", name).CombinedOutput(); err != nil {
			t.Errorf("removing machine %s: %v\n%s", name, err, out)
		}
	}
	for disk := range machineDisks {
		vol := name + "-" + disk
		label, err := exec.Command("docker", "volume", "inspect", "-f", fmt.Sprintf("{{index .Labels %q}}", machineLabel), vol).Output()
		if err != nil {
			continue // no such volume
		}
		if strings.TrimSpace(string(label)) != name {
			t.Fatalf("a volume named %s exists that is not a machine's disk: it is left alone, and the test cannot use the name", vol)
		}
		if out, err := exec.Command("docker", "volume", "rm", vol).CombinedOutput(); err != nil {
			t.Errorf("removing the volume %s: %v\n%s", vol, err, out)
		}
	}
	if err := os.RemoveAll(filepath.Join(cache, "machines", name)); err != nil {
		t.Error(err)
	}
}

// copyFile copies the executable src to dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// waitDocker waits for the machine's Docker engine to answer, and fails
// with the machine's log (its engine's) if it does not.
func (m *machine) waitDocker(t testing.TB) {
	t.Helper()
	if m.vm != nil {
		m.vm.waitDocker(t, false)
		return
	}
	if !waitFor(machineDockerUp, func() bool {
		return exec.Command("docker", "exec", m.name, "docker", "version").Run() == nil
	}) {
		state, _ := exec.Command("docker", "inspect", "-f", "{{.State.Status}} (exit {{.State.ExitCode}}) {{.State.Error}}", m.name).CombinedOutput()
		logs, _ := exec.Command("docker", "logs", "--tail", "40", m.name).CombinedOutput()
		what := "its log (/var/log/dockerd.log)"
		if m.systemd {
			what = "its console, then docker.service's journal"
			j, _ := exec.Command("docker", "exec", m.name, "journalctl", "--no-pager", "-n", "40", "-u", "docker.service", "-u", "containerd.service").CombinedOutput()
			logs = append(logs, j...)
		}
		t.Fatalf("machine %s: its Docker engine did not answer within %s; the machine is %s\n--- %s\n%s",
			m.name, machineDockerUp, strings.TrimSpace(string(state)), what, logs)
	}
}

// exec runs a command in the machine, as root at its shell.
func (m *machine) exec(t testing.TB, args ...string) result {
	t.Helper()
	return m.run(t, nil, args...)
}

// dk8s runs the test's dk8s binary in the machine, under the harness's
// lock unless args name another.
func (m *machine) dk8s(t testing.TB, args ...string) result {
	t.Helper()
	return m.run(t, []string{"DK8S_LOCK=" + machineLock}, append([]string{machineDK8s}, args...)...)
}

// must runs dk8s in the machine and fails t (the test, or the subtest it
// is called in) when it exits non-zero.
func (m *machine) must(t testing.TB, args ...string) result {
	t.Helper()
	r := m.dk8s(t, args...)
	if r.code != 0 {
		t.Fatalf("on %s: dk8s %s:\n%s", m.name, strings.Join(args, " "), r)
	}
	return r
}

func (m *machine) run(t testing.TB, env []string, args ...string) result {
	t.Helper()
	if m.vm != nil {
		return runResult(t, m.vm.command(env, args...), "ssh to "+m.name)
	}
	cmdArgs := []string{"exec"}
	for _, e := range env {
		cmdArgs = append(cmdArgs, "-e", e)
	}
	return runResult(t, exec.Command("docker", append(append(cmdArgs, m.name), args...)...), "docker exec in "+m.name)
}

// reboot restarts the machine, as a host is rebooted: its engine stops its
// containers and comes back with those that restart always; its disks and
// address stay, /run and /tmp start empty.
func (m *machine) reboot(t testing.TB) {
	t.Helper()
	if m.vm != nil {
		m.vm.reboot(t)
		return
	}
	start := time.Now()
	if out, err := exec.Command("docker", "restart", m.name).CombinedOutput(); err != nil {
		t.Fatalf("rebooting machine %s: %v\n%s", m.name, err, out)
	}
	m.waitDocker(t)
	t.Logf("machine %s rebooted: its Docker engine answered %.1fs after docker restart", m.name, time.Since(start).Seconds())
}

// cgroupDirs lists the directories named name in this host's cgroup
// hierarchies (a container's cgroups are named by its ID).
func cgroupDirs(t *testing.T, name string) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir("/sys/fs/cgroup", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a cgroup removed while walking
		}
		if d.IsDir() && d.Name() == name {
			dirs = append(dirs, path)
			return fs.SkipDir
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// leftCheck is a look for what a reset may have left on a machine: a
// command that prints what it finds and exits 0, or, with matchExit1,
// exits 1 when it finds nothing (grep, pgrep). Any other exit is a look
// that failed, which says nothing of what is left: a tool that failed
// prints nothing, and would pass for a clean machine.
type leftCheck struct {
	what       string
	cmd        []string
	matchExit1 bool
}

// sh is a leftCheck of a bash pipeline, any of whose commands failing
// fails the look; in it, 'none CMD' runs a grep or pgrep whose exit 1
// (nothing found) is a success.
func sh(what, script string) leftCheck {
	return leftCheck{what: what, cmd: []string{"bash", "-c", `set -eo pipefail; none() { "$@" || [ $? = 1 ]; }; ` + script}}
}

// assertNothingLeft runs each check on m and fails t for each that finds
// something, or could not look.
func assertNothingLeft(t *testing.T, m *machine, when string, checks []leftCheck) {
	t.Helper()
	for _, c := range checks {
		r := m.exec(t, c.cmd...)
		switch {
		case r.code == 1 && c.matchExit1:
		case r.code != 0:
			t.Errorf("%s: looking for %s on %s failed, so nothing is known of it:\n%s", when, c.what, m.name, r)
		case strings.TrimSpace(r.stdout) != "":
			t.Errorf("%s left %s on %s:\n%s", when, c.what, m.name, r.stdout)
		}
	}
}

// dirAndContainers are the looks of a machine that must hold no cluster
// directory's content and no container.
var dirAndContainers = []leftCheck{
	sh("files", "if [ -e /var/lib/dk8s ]; then ls -A /var/lib/dk8s; fi"),
	{what: "containers", cmd: []string{"docker", "ps", "-aq"}},
}
