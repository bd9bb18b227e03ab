//go:build vm

package integration

import (
	"strings"
	"testing"
	"time"
)

// TestNodeOnVM is issue 24's real host: a Debian 12 VM under QEMU, made
// from Debian's packages alone (test/vm/build.sh), with what the container
// machines cannot have: cgroup v2 under systemd, loadable kernel modules,
// AppArmor, Debian's own Docker started by its units. There, what the
// systemd machine test runs: a pull through a mirror, start, the node's
// agents as systemd units, a workload behind a Service and DNS, the kubectl
// verbs, a reboot of the VM back with no command, reset --purge leaving
// nothing. 'make test-vm' runs it (not part of 'make test': see README).
func TestNodeOnVM(t *testing.T) {
	began := time.Now()
	vm := startVM(t, "dk8s-vm")
	phase := func(what string, since time.Time) {
		t.Helper()
		t.Logf("%s: %.0fs", what, time.Since(since).Seconds())
	}
	phase("boot", began)

	t.Run("the VM is a host as users have it: cgroup v2, systemd, AppArmor, kernel modules", func(t *testing.T) {
		for what, c := range map[string]struct{ cmd, want string }{
			"cgroups":        {"stat -fc %T /sys/fs/cgroup", "cgroup2fs"},
			"PID 1":          {"cat /proc/1/comm", "systemd"},
			"AppArmor":       {"cat /sys/module/apparmor/parameters/enabled", "Y"},
			"Docker":         {"docker info -f '{{.CgroupVersion}} {{.CgroupDriver}}'", "2 systemd"},
			"kernel modules": {"modprobe -n -v vxlan >/dev/null && echo loadable", "loadable"},
		} {
			if got := strings.TrimSpace(vm.exec(t, "sh", "-c", c.cmd).stdout); got != c.want {
				t.Errorf("%s: %q gives %q, want %q", what, c.cmd, got, c.want)
			}
		}
	})

	nodeArgs := []string{"--kubelet-binary", machineKubelet, "--mirror", vmPathMirror,
		// QEMU's translator runs the control plane several times slower
		// than a host does.
		"--timeout", "10m"}
	began = time.Now()
	vm.must(t, "pull", "--mirror", vmFlatMirror)
	phase("dk8s pull", began)
	began = time.Now()
	r := vm.must(t, append([]string{"start"}, nodeArgs...)...)
	phase("dk8s start", began)
	for _, want := range []string{"dk8s-containerd.service installed", "dk8s-kubelet.service installed", "node dk8s-vm is Ready"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("start on the VM should say %q:\n%s", want, r)
		}
	}
	kubectl := adminKubectl(t, vm)
	mustKubectl := failing(kubectl)

	t.Run("the node's agents are systemd's units, enabled and active; ps shows them", func(t *testing.T) {
		assertUnitsUp(t, vm, []string{"dk8s-containerd.service", "dk8s-kubelet.service"})
		// Under emulation etcd's and the apiserver's health checks miss
		// their deadlines now and then, and the controller-manager and
		// the scheduler lose their leases and restart: ps says so, and
		// is asked again until every part is healthy.
		var ps result
		if !waitFor(5*time.Minute, func() bool { ps = vm.dk8s(t, "ps"); return ps.code == 0 }) {
			t.Fatalf("ps never showed every part healthy:\n%s", ps)
		}
		if line := lineWith(ps.stdout, "kubelet "); !strings.Contains(line, "systemd") || !strings.Contains(line, "healthy") {
			t.Errorf("ps should show the kubelet healthy under systemd: %q", line)
		}
	})

	began = time.Now()
	// Under the translator a restarting controller-manager (see ps
	// above) can hold the Deployment's pods back for minutes.
	deployEchoWithin(t, mustKubectl(t), 12*time.Minute)
	phase("the echo workload rolled out", began)
	ip := strings.TrimSpace(mustKubectl(t)("get", "service", "echo", "-o", "jsonpath={.spec.clusterIP}"))
	assertServes(t, vm, ip, "after start")

	t.Run("kubectl exec, cp, logs, port-forward, debug, exec probes and hooks", func(t *testing.T) {
		assertKubectlVerbs(t, machineKubeconfig(t, vm), vm.name, verbsImage, func(path string) string { return vm.exec(t, "cat", path).stdout })
	})

	t.Run("the VM rebooted comes back with no command", func(t *testing.T) {
		start := time.Now()
		vm.reboot(t)
		if !waitFor(10*time.Minute, func() bool { return readySince(kubectl, vm.name, start) }) {
			t.Fatalf("%s is not Ready again after its reboot:\n%s", vm.name, vm.exec(t, "journalctl", "--no-pager", "-n", "20", "-u", "dk8s-kubelet.service").stdout)
		}
		phase("reboot to node Ready", start)
		// The pods come back as their kubelet starts them again, minutes
		// after the node is Ready under QEMU's translator; until then the
		// Deployment's status is the one from before the reboot.
		var body string
		if !waitFor(10*time.Minute, func() bool {
			body = fetchFrom(t, vm, "http://"+ip+"/")
			return strings.HasPrefix(body, "echo-")
		}) {
			t.Fatalf("after the reboot the Service %s answered %q, want a pod's name:\n%s", ip, body, mustKubectl(t)("get", "pods", "-A", "-o", "wide"))
		}
		assertServes(t, vm, ip, "after the reboot")
		phase("reboot to the Service answering", start)
	})

	t.Run("reset --purge leaves nothing", func(t *testing.T) {
		if r := vm.must(t, "reset", "--purge", "--yes"); !strings.Contains(r.stderr, "dk8s-kubelet.service") {
			t.Errorf("reset should name the units it removed:\n%s", r)
		}
		assertNothingLeft(t, vm, "reset --purge", systemdNodeLeftovers)
	})
}
