package integration

import (
	"archive/tar"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDocker29 runs dk8s's whole path on hosts as a fresh docker-ce 29
// install makes them: Docker Engine 29 with containerd 2 and runc in /usr/bin
// (built from their modules by test/harness/build-docker29.sh), and images in
// containerd's store, the default of a new install. There an image's ID is
// its index or manifest digest, not its config digest, and docker save
// writes an OCI layout: pull, save, load and their verification must hold
// there as on the classic store, and the node's containerd is containerd 2's,
// which reads dk8s's configuration its own way.
func TestDocker29(t *testing.T) {
	_, rel := harness(t)
	cp := startDocker29Machine(t, "dk8s-d29-cp")
	w := startDocker29Machine(t, "dk8s-d29-w")

	t.Run("the machines run Docker 29 with containerd's image store", func(t *testing.T) {
		for _, m := range []*machine{cp, w} {
			r := m.exec(t, "docker", "info", "-f", "{{.ServerVersion}} {{.Driver}} {{json .DriverStatus}}")
			if r.code != 0 || !strings.HasPrefix(r.stdout, "29.") || !strings.Contains(r.stdout, "io.containerd.snapshotter") {
				t.Fatalf("%s's engine should be Docker 29 on containerd's image store:\n%s", m.name, r)
			}
			if r := m.exec(t, "containerd", "--version"); r.code != 0 || !strings.Contains(r.stdout, " v2.") {
				t.Fatalf("%s's containerd should be containerd 2's:\n%s", m.name, r)
			}
			if r := m.exec(t, "runc", "--version"); r.code != 0 || !strings.Contains(r.stdout, "runc version 1.5") {
				t.Fatalf("%s's runc should be Docker 29's (1.5):\n%s", m.name, r)
			}
		}
	})

	t.Run("pull through the mirror verifies every image by its index digest", func(t *testing.T) {
		r := cp.must(t, "pull", "--mirror", machineFlatMirror)
		for _, img := range rel.Images {
			if line := lineWith(r.stdout, img.Name); !strings.Contains(line, "pulled") || !strings.Contains(line, "verified") {
				t.Errorf("summary line for %s = %q, want it pulled and verified", img.Name, line)
			}
			// What makes this store differ: the ID is the index the
			// registry served, which the lock holds.
			id := strings.TrimSpace(cp.exec(t, "docker", "image", "inspect", "-f", "{{.Id}}", img.Name).stdout)
			if id != img.Digest {
				t.Errorf("%s has the ID %s in Docker 29's store, want its index digest %s", img.Name, id, img.Digest)
			}
		}
	})

	// The set, carried to a machine with no registry in reach of dk8s.
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "set.tar"), filepath.Join(dir, "tampered.tar")
	cp.must(t, "save", "-o", "/root/set.tar")
	if out, err := exec.Command("docker", "cp", cp.name+":/root/set.tar", good).CombinedOutput(); err != nil {
		t.Fatalf("copying the archive out of %s: %v\n%s", cp.name, err, out)
	}
	t.Run("save writes Docker 29's OCI layout", func(t *testing.T) {
		entries := tarNames(t, good)
		for _, want := range []string{"dk8s-images.lock", "oci-layout", "index.json"} {
			if !entries[want] {
				t.Errorf("the archive has no %s", want)
			}
		}
	})
	api := mustImage(t, rel, "kube-apiserver")
	tamper(t, good, bad, "kube-apiserver", "pause")
	for _, f := range []string{good, bad} {
		if out, err := exec.Command("docker", "cp", f, w.name+":/root/").CombinedOutput(); err != nil {
			t.Fatalf("copying %s into %s: %v\n%s", f, w.name, err, out)
		}
	}

	t.Run("a tampered archive is refused and nothing of it is named", func(t *testing.T) {
		r := w.dk8s(t, "load", "-i", "/root/tampered.tar")
		if r.code == 0 || !strings.Contains(lineWith(r.stderr, api.Name), "does not match images.lock") {
			t.Fatalf("loading the tampered archive should fail, naming %s:\n%s", api.Name, r)
		}
		for _, n := range append([]string{api.Name}, api.Aliases...) {
			if r := w.exec(t, "docker", "image", "inspect", n); r.code == 0 {
				t.Errorf("%s was given to the tampered content", n)
			}
		}
		if r := w.exec(t, "sh", "-c", "docker images --format '{{.Repository}}' | grep dk8s-load"); r.code == 0 {
			t.Errorf("load left names it gives while it checks:\n%s", r)
		}
	})

	t.Run("load verifies every image of the OCI archive", func(t *testing.T) {
		r := w.must(t, "load", "-i", "/root/set.tar")
		for _, img := range rel.Images {
			if line := lineWith(r.stdout, img.Name); !strings.Contains(line, "loaded") || !strings.Contains(line, "verified") {
				t.Errorf("load line for %s = %q, want it loaded and verified", img.Name, line)
			}
		}
		r = w.must(t, "images")
		for _, img := range rel.Images {
			f := append([]string{"", ""}, strings.Fields(lineWith(r.stdout, img.Name))...)
			if present, verified := f[len(f)-2], f[len(f)-1]; present != "yes" || verified != "verified" {
				t.Errorf("images on %s after load: %s should be present and verified:\n%s", w.name, img.Name, r.stdout)
			}
		}
	})

	nodeArgs := []string{"--kubelet-binary", machineKubelet, "--mirror", machinePathMirror}
	cp.must(t, append([]string{"start"}, nodeArgs...)...)
	kubectl := adminKubectl(t, cp)
	mustKubectl := failing(kubectl)

	t.Run("the loaded machine joins", func(t *testing.T) {
		joinCmd, _ := joinCommands(cp.must(t, "token", "create", "--print-join-command").stdout)
		if joinCmd == nil {
			t.Fatal("token create --print-join-command printed no dk8s join line")
		}
		if r := w.must(t, append(joinCmd, nodeArgs...)...); !strings.Contains(r.stderr, "node "+w.name+" is Ready") {
			t.Errorf("join should say the node is Ready:\n%s", r)
		}
		for _, n := range []string{cp.name, w.name} {
			if !waitFor(time.Minute, func() bool { return nodeReady(kubectl, n) }) {
				t.Fatalf("node %s is not Ready:\n%s", n, mustKubectl(t)("get", "nodes", "-o", "wide"))
			}
		}
	})

	t.Run("pods on both machines reach each other, a Service and DNS", func(t *testing.T) {
		k := mustKubectl(t)
		deployEcho(t, k)
		pods := echoPods(t, k)
		if len(pods) != 2 {
			t.Fatalf("want an echo pod on each machine, got %v\n%s", pods, k("get", "pods", "-o", "wide"))
		}
		assertPodsReach(t, cp, pods, strings.TrimSpace(k("get", "service", "echo", "-o", "jsonpath={.spec.clusterIP}")))
	})

	t.Run("a rebooted worker comes back Ready with no command", func(t *testing.T) {
		k := mustKubectl(t)
		w.reboot(t)
		if !waitFor(4*time.Minute, func() bool {
			p, ok := echoPods(t, k)[w.name]
			return nodeReady(kubectl, w.name) && ok && fetchFrom(t, cp, "http://"+p.ip+":8080/") == p.name
		}) {
			t.Fatalf("after a reboot, %s and its pod are not back:\n%s\n%s", w.name, k("get", "nodes"), k("get", "pods", "-o", "wide"))
		}
	})

	t.Run("kubectl exec, cp, logs, port-forward, debug, exec probes and hooks on the worker", func(t *testing.T) {
		assertKubectlVerbs(t, machineKubeconfig(t, cp), w.name, verbsImage, func(path string) string { return w.exec(t, "cat", path).stdout })
	})
}

// startDocker29Machine starts a machine as a fresh install of Docker 29's
// static binaries makes a host: the harness's build of Docker Engine 29,
// containerd 2 and runc in a directory of their own, first on the PATH of
// everything the machine runs (its engine, its shells, dk8s), in place of
// this host's in /usr; and an empty /var/lib/docker, where Docker 29 chooses
// containerd's image store. A directory, not each binary bound over its
// namesake in /usr: runc 1.5 runs its init from an overlay of its own
// binary's directory, which sees the file beneath such a bind (this host's
// runc 1.1), as no real host has it.
func startDocker29Machine(t *testing.T, name string) *machine {
	t.Helper()
	if testLock == "" {
		t.Fatal("DK8S_TEST_LOCK is not set: run the integration tests with 'make test', which brings up the harness (test/harness/up.sh)")
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(testLock), "docker29.dir"))
	if err != nil {
		t.Fatalf("the harness names no Docker 29 build (%v): bring it up with test/harness/up.sh, which runs build-docker29.sh", err)
	}
	dir := strings.TrimSpace(string(b))
	for _, bin := range []string{"dockerd", "docker-proxy", "containerd", "containerd-shim-runc-v2", "ctr", "runc"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			t.Fatalf("the harness's Docker 29 build: %v", err)
		}
	}
	const bin = "/opt/docker/bin"
	return bootMachine(t, name, false, "-v", dir+":"+bin+":ro",
		"-e", "PATH="+bin+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
}

// tarNames lists the entries of the tar file at path.
func tarNames(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		names[strings.TrimPrefix(hdr.Name, "./")] = true
	}
}
