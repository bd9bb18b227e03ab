package integration

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/dk8s/dk8s/pkg/bundle"
)

// TestBundleStartsAFreshMachine is the air gap in one file: a bundle
// written where the mirrors are, carried into a machine that has Docker and
// nothing else (no registry, no kubelet, no mirror given), where the dk8s
// taken out of the bundle loads it and starts a node. Bundles altered on
// the way are refused with nothing loaded or installed.
func TestBundleStartsAFreshMachine(t *testing.T) {
	engine, _ := harness(t)
	lock, rel := lockWithBinaries(t)
	clean(t, engine, rel)
	if r := dk8s(t, nil, "pull", "--mirror", flatMirror); r.code != 0 {
		t.Fatal(r)
	}
	files := harnessMirror(t, rel.Kubernetes)
	dir := t.TempDir()
	good := filepath.Join(dir, "dk8s-bundle.tar")
	r := dk8s(t, nil, "save", "--bundle", good, "--lock", lock, "--binary-mirror", files.base, "--dir", t.TempDir())
	if r.code != 0 {
		t.Fatalf("save --bundle failed:\n%s", r)
	}
	if files.requests.Load() == 0 {
		t.Errorf("save --bundle should have fetched kubelet and kubectl through the binary mirror:\n%s", r)
	}
	if !strings.Contains(r.stderr, "load --bundle dk8s-bundle.tar") {
		t.Errorf("save --bundle should say how to load it:\n%s", r)
	}

	// An attacker who alters a part rewrites the manifest's sum too: the
	// lock the machine trusts refuses it all the same.
	badKubelet := filepath.Join(dir, "kubelet-altered.tar")
	rewriteBundle(t, good, badKubelet, map[string]func([]byte) []byte{
		bundle.Kubelet: func(b []byte) []byte { return append(b, "#"...) },
	})
	badImage := filepath.Join(dir, "image-altered.tar")
	rewriteBundle(t, good, badImage, map[string]func([]byte) []byte{
		bundle.Images: func(b []byte) []byte {
			in, out := filepath.Join(dir, "images.tar"), filepath.Join(dir, "images-altered.tar")
			if err := os.WriteFile(in, b, 0o644); err != nil {
				t.Fatal(err)
			}
			tamper(t, in, out, "kube-apiserver", "pause")
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			return data
		},
	})

	m := startMachine(t, "dk8s-it-bundle")
	for _, f := range []string{good, badKubelet, badImage, lock} {
		if out, err := exec.Command("docker", "cp", f, m.name+":/root/"+filepath.Base(f)).CombinedOutput(); err != nil {
			t.Fatalf("docker cp %s: %v\n%s", f, err, out)
		}
	}
	// The dk8s the user has is the one in the bundle.
	m.exec(t, "tar", "-xf", "/root/dk8s-bundle.tar", "-C", "/root", bundle.DK8s)
	local := func(t *testing.T, args ...string) result {
		t.Helper()
		return m.run(t, []string{"DK8S_LOCK=/root/" + filepath.Base(lock)}, append([]string{"/root/bin/dk8s"}, args...)...)
	}
	nothingLoaded := func(t *testing.T) {
		t.Helper()
		if list := m.exec(t, "docker", "image", "ls", "-a", "-q").stdout; strings.TrimSpace(list) != "" {
			t.Errorf("the machine's Docker should hold no image after a refused bundle:\n%s", m.exec(t, "docker", "image", "ls", "-a").stdout)
		}
		if r := m.exec(t, "ls", "/var/lib/dk8s/bin"); r.code == 0 && strings.TrimSpace(r.stdout) != "" {
			t.Errorf("/var/lib/dk8s/bin should be empty after a refused bundle: %s", r.stdout)
		}
		if r := m.exec(t, "sh", "-c", "ls -a /root | grep dk8s-bundle-"); r.stdout != "" {
			t.Errorf("the bundle's unpacked parts should be gone: %s", r.stdout)
		}
	}

	t.Run("a kubelet other than the pinned one is refused, nothing loaded", func(t *testing.T) {
		r := local(t, "load", "--bundle", "/root/kubelet-altered.tar")
		if r.code == 0 || !strings.Contains(r.stderr, "the bundle's kubelet is not the kubelet "+rel.Kubernetes) || !strings.Contains(r.stderr, "nothing of the bundle was loaded or installed") {
			t.Errorf("load should refuse the altered kubelet and say nothing was loaded:\n%s", r)
		}
		nothingLoaded(t)
	})

	t.Run("an image other than the locked one is refused, nothing loaded", func(t *testing.T) {
		r := local(t, "load", "--bundle", "/root/image-altered.tar")
		api := imageOf(t, rel, "kube-apiserver")
		if line := lineWith(r.stdout, api); r.code == 0 || !strings.Contains(line, "MISMATCH") || !strings.Contains(r.stderr, "nothing of the bundle was loaded or installed") {
			t.Errorf("load should refuse the bundle for %s (%q):\n%s", api, line, r)
		}
		nothingLoaded(t)
	})

	r = local(t, "load", "--bundle", "/root/dk8s-bundle.tar")
	if r.code != 0 {
		t.Fatalf("load --bundle failed:\n%s", r)
	}
	for _, img := range rel.Images {
		if line := lineWith(r.stdout, img.Name); !strings.Contains(line, "loaded") || !strings.Contains(line, "verified") {
			t.Errorf("load line for %s = %q", img.Name, line)
		}
	}
	for _, name := range hostBinaries {
		if got, want := m.exec(t, "sha256sum", "/var/lib/dk8s/bin/"+name).stdout, fileSum(t, harnessBinary(rel.Kubernetes, name)); !strings.HasPrefix(got, want) {
			t.Errorf("%s in /var/lib/dk8s/bin: %q, want the pinned %s", name, got, want)
		}
	}
	agent, _, _ := strings.Cut(lineWith(r.stderr, ": made from "), ": made from ")
	if out := m.exec(t, "docker", "image", "inspect", "-f", "{{len .RootFS.Layers}} {{json .Config.Entrypoint}}", agent).stdout; agent == "" || strings.TrimSpace(out) != `1 ["/bin/dk8s"]` {
		t.Errorf("load --bundle should make the agent's image, and say which (%q): %q\n%s", agent, out, r.stderr)
	}

	// No mirror, no kubelet given: everything from the bundle.
	began := time.Now()
	if r := local(t, "start"); r.code != 0 || !strings.Contains(r.stderr, "is Ready") {
		t.Fatalf("start from the bundle alone failed:\n%s", r)
	}
	t.Logf("start from the bundle: %.0fs", time.Since(began).Seconds())
	var k result
	if !waitFor(3*time.Minute, func() bool {
		k = local(t, "kubectl", "get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns", "--no-headers")
		return k.code == 0 && strings.Count(k.stdout, "Running") >= 1 && !strings.Contains(k.stdout, "0/1")
	}) {
		t.Errorf("CoreDNS, from the bundle's images, should be running; dk8s kubectl (the bundle's kubectl) says:\n%s", k)
	}
}

// rewriteBundle copies the bundle src to dst with the parts in edit
// changed, and its manifest's sums and sizes made to match, as someone who
// alters a bundle on its way would.
func rewriteBundle(t *testing.T, src, dst string, edit map[string]func([]byte) []byte) {
	t.Helper()
	mid := dst + ".parts"
	defer os.Remove(mid)
	sums := map[string]bundle.Part{}
	rewriteTar(t, src, mid, func(hdr *tar.Header, data []byte) []byte {
		if f := edit[hdr.Name]; f != nil {
			data = f(data)
		}
		sum := sha256.Sum256(data)
		sums[hdr.Name] = bundle.Part{Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
		return data
	})
	rewriteTar(t, mid, dst, func(hdr *tar.Header, data []byte) []byte {
		if hdr.Name != bundle.ManifestName {
			return data
		}
		var m bundle.Manifest
		if err := yaml.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		for i, p := range m.Parts {
			m.Parts[i].Size, m.Parts[i].SHA256 = sums[p.Name].Size, sums[p.Name].SHA256
		}
		data, err := yaml.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		return data
	})
}
