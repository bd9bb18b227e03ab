package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A machine that is a real virtual machine: Debian 12 under QEMU, built
// from Debian's packages by test/vm/build.sh, as a user's VPS is installed.
// It has what the container machines cannot: cgroup v2 under systemd,
// loadable kernel modules, AppArmor. Its network is QEMU's user network
// with restrict=on: the VM reaches nothing but the ports of this host's
// loopback forwarded to it, and this host reaches its SSH and apiserver
// ports through forwards on loopback.
const (
	// vmHostAddr is this host's loopback as the VM sees it: the ports
	// forwarded there are the harness's registries.
	vmHostAddr = "10.0.2.100"
	// The registries as the VM's Docker and dk8s name them.
	vmFlatMirror = vmHostAddr + ":5001/google_containers"
	vmPathMirror = vmHostAddr + ":5002/..."
	vmBoot       = 6 * time.Minute // QEMU's TCG boots Debian in 1 to 2 minutes on an idle host
)

// vmHost is how the test reaches a VM.
type vmHost struct {
	name     string
	dir      string // its disk overlay, console log and pid file
	key      string // root's SSH key
	sshAddr  string // on this host's loopback, forwarded to the VM's 22
	apiAddr  string // on this host's loopback, forwarded to the VM's 6443
	bootedAt string // boot_id of the boot the test last saw
}

// startVM boots a Debian 12 VM named name (its host name, as build.sh
// made it), brings in dk8s, the harness's kubelet and lock as a user would
// copy them (a second disk, copied to /opt/dk8s, the paths the container
// machines use), and points its Docker at the harness's registries as
// insecure ones, as a user of a plain-HTTP mirror does.
func startVM(t *testing.T, name string) *machine {
	t.Helper()
	if testLock == "" {
		t.Fatal("DK8S_TEST_LOCK is not set: run the VM test with 'make test-vm', which brings up the harness (test/harness/up.sh)")
	}
	cache := filepath.Dir(testLock)
	out, err := exec.Command("../vm/build.sh", cache).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("building the VM image (test/vm/build.sh): %v\n%s", err, stderr)
	}
	image := strings.TrimSpace(string(out))

	dir := filepath.Join(cache, "machines", name)
	os.RemoveAll(dir)
	files := filepath.Join(dir, "files")
	if err := os.MkdirAll(files, 0o755); err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{dk8sBin: "dk8s", filepath.Join(cache, "kubelet"): "kubelet", testLock: "test.lock"} {
		if err := copyFile(src, filepath.Join(files, dst)); err != nil {
			t.Fatalf("the VM's %s: %v", dst, err)
		}
	}
	for _, c := range [][]string{
		{"qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", filepath.Join(image, "root.raw"), filepath.Join(dir, "root.qcow2")},
		{"mkfs.ext4", "-q", "-L", "dk8s-files", "-d", files, filepath.Join(dir, "files.raw"), "1G"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	v := &vmHost{name: name, dir: dir, key: filepath.Join(image, "id_ed25519"), sshAddr: closedAddr(t), apiAddr: closedAddr(t)}

	// Each registry forward runs socat per connection (a "tcp:" target
	// would be one connection, made once).
	netdev := fmt.Sprintf("user,id=n0,restrict=on,hostfwd=tcp:%s-:22,hostfwd=tcp:%s-:6443", v.sshAddr, v.apiAddr)
	for _, port := range []string{"5001", "5002"} {
		netdev += fmt.Sprintf(",guestfwd=tcp:%s:%s-cmd:socat - TCP:127.0.0.1:%s", vmHostAddr, port, port)
	}
	qemu := exec.Command("qemu-system-x86_64",
		// /dev/kvm here does not run a stock kernel at a useful speed:
		// QEMU's own translator, on both cores.
		"-accel", "tcg,thread=multi", "-cpu", "max", "-machine", "q35", "-m", "4096", "-smp", "2",
		"-kernel", filepath.Join(image, "vmlinuz"), "-initrd", filepath.Join(image, "initrd.img"),
		"-append", "root=/dev/vda rw console=ttyS0",
		"-drive", "file="+filepath.Join(dir, "root.qcow2")+",format=qcow2,if=virtio,cache=unsafe",
		"-drive", "file="+filepath.Join(dir, "files.raw")+",format=raw,if=virtio,readonly=on",
		"-netdev", netdev, "-device", "virtio-net-pci,netdev=n0",
		"-display", "none", "-serial", "file:"+filepath.Join(dir, "console.log"),
		"-daemonize", "-pidfile", filepath.Join(dir, "qemu.pid"))
	start := time.Now()
	if out, err := qemu.CombinedOutput(); err != nil {
		t.Fatalf("starting the VM: %v\n%s", err, out)
	}
	if os.Getenv("DK8S_KEEP_MACHINES") == "1" {
		t.Cleanup(func() {
			t.Logf("VM %s kept (DK8S_KEEP_MACHINES=1): ssh %s; stop it with: kill $(cat %s)", name, strings.Join(v.sshArgs(), " "), filepath.Join(dir, "qemu.pid"))
		})
	} else {
		t.Cleanup(v.stop)
	}
	v.waitDocker(t, true)
	t.Logf("VM %s booted: its Docker engine answered %.1fs after QEMU started", name, time.Since(start).Seconds())

	m := &machine{name: name, addr: "10.0.2.15", vm: v}
	daemon := fmt.Sprintf(`{"insecure-registries": ["%[1]s:5001", "%[1]s:5002"]}`, vmHostAddr)
	setup := "mkdir -p /mnt/dk8s-files /opt/dk8s && mount -o ro /dev/vdb /mnt/dk8s-files && cp /mnt/dk8s-files/dk8s /mnt/dk8s-files/kubelet /mnt/dk8s-files/test.lock /opt/dk8s/ && umount /mnt/dk8s-files && " +
		"echo '" + daemon + "' >/etc/docker/daemon.json && systemctl restart docker"
	if r := m.exec(t, "sh", "-c", setup); r.code != 0 {
		t.Fatalf("bringing dk8s into the VM: %s", r)
	}
	m.waitDocker(t)
	return m
}

func (v *vmHost) sshArgs() []string {
	host, port, _ := net.SplitHostPort(v.sshAddr)
	return []string{"-i", v.key, "-p", port, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "root@" + host}
}

// command runs args in the VM with env set, each argument quoted for the
// remote shell that SSH hands the line to.
func (v *vmHost) command(env []string, args ...string) *exec.Cmd {
	var line []string
	if len(env) > 0 {
		line = append(line, "env")
		for _, e := range env {
			line = append(line, shellQuote(e))
		}
	}
	for _, a := range args {
		line = append(line, shellQuote(a))
	}
	return exec.Command("ssh", append(v.sshArgs(), strings.Join(line, " "))...)
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// bootID is the VM's boot_id, "" while it does not answer.
func (v *vmHost) bootID() string {
	out, err := v.command(nil, "cat", "/proc/sys/kernel/random/boot_id").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// waitDocker waits for the VM's Docker engine to answer, in a boot other
// than the last one seen when newBoot.
func (v *vmHost) waitDocker(t testing.TB, newBoot bool) {
	t.Helper()
	var id string
	if !waitFor(vmBoot, func() bool {
		id = v.bootID()
		return id != "" && (!newBoot || id != v.bootedAt) && v.command(nil, "docker", "version").Run() == nil
	}) {
		t.Fatalf("VM %s did not boot to a running Docker engine in %s; its console's end:\n%s", v.name, vmBoot, v.consoleTail())
	}
	v.bootedAt = id
}

// reboot reboots the VM from inside, as its owner would: systemd stops
// everything, the kernel restarts (QEMU boots the same kernel again).
func (v *vmHost) reboot(t testing.TB) {
	t.Helper()
	start := time.Now()
	// SSH's connection goes with the VM's shutdown: its exit says nothing.
	_ = v.command(nil, "systemctl", "reboot").Run()
	v.waitDocker(t, true)
	t.Logf("VM %s rebooted: its Docker engine answered %.1fs after systemctl reboot", v.name, time.Since(start).Seconds())
}

func (v *vmHost) consoleTail() string {
	b, _ := os.ReadFile(filepath.Join(v.dir, "console.log"))
	lines := strings.Split(string(b), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}

func (v *vmHost) stop() {
	if b, err := os.ReadFile(filepath.Join(v.dir, "qemu.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			// Gone before its disk is: QEMU writes the overlay until it exits.
			waitFor(10*time.Second, func() bool { return syscall.Kill(pid, 0) != nil })
		}
	}
	// The disk overlay is the VM's, and goes with it; the image stays.
	os.RemoveAll(v.dir)
}

var kubeconfigServer = regexp.MustCompile(`(?m)^(\s*server: )https://\S+$`)

// reachable is a kubeconfig of the VM's cluster that this host can use:
// its server is the apiserver's port forwarded to this host's loopback,
// which the serving certificate names as every dk8s apiserver's does.
func (v *vmHost) reachable(kubeconfig string) string {
	return kubeconfigServer.ReplaceAllString(kubeconfig, fmt.Sprintf("${1}https://%s", v.apiAddr))
}
