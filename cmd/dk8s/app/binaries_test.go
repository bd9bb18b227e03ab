package app

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/dk8s/dk8s"
	"github.com/dk8s/dk8s/pkg/bootstrap"
	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/containers/containerstest"
	"github.com/dk8s/dk8s/pkg/images"
)

// binaryLock writes the built-in lock with its default release's kubelet
// and kubectl on dl.k8s.io pinned to pins (by name, for this machine), and
// every other release's binaries dropped.
func binaryLock(t *testing.T, pins map[string][]byte) (string, *images.Release) {
	t.Helper()
	lock, err := images.ParseLock(dk8s.DefaultLock)
	if err != nil {
		t.Fatal(err)
	}
	for i := range lock.Releases {
		lock.Releases[i].Binaries = nil
	}
	rel, _ := lock.Release("")
	for _, name := range []string{"kubelet", "kubectl"} {
		rel.Binaries = append(rel.Binaries, images.Binary{Name: name,
			URL:    "https://dl.k8s.io/release/" + rel.Kubernetes + "/bin/{os}/{arch}/" + name,
			SHA256: map[string]string{runtime.GOOS + "/" + runtime.GOARCH: fmt.Sprintf("%x", sha256.Sum256(pins[name]))}})
	}
	data, err := lock.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "images.lock")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, rel
}

// daocloudFiles serves files as DaoCloud's file mirror lays out dl.k8s.io's
// release binaries of version for this machine; it returns its base URL.
func daocloudFiles(t *testing.T, version string, files map[string][]byte) string {
	t.Helper()
	prefix := "/dl.k8s.io/release/" + version + "/bin/" + runtime.GOOS + "/" + runtime.GOARCH + "/"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := files[strings.TrimPrefix(r.URL.Path, prefix)]
		if !strings.HasPrefix(r.URL.Path, prefix) || !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/dl.k8s.io"
}

// presentHost is a fake engine that has every image of rel already.
func presentHost(rel *images.Release) *containerstest.Engine {
	fake := &containerstest.Engine{Images: map[string]containers.Image{}}
	for _, img := range rel.Images {
		fake.Images[img.Name] = lockedImage(img)
		for _, a := range img.Aliases {
			fake.Images[a] = lockedImage(img)
		}
	}
	return fake
}

func TestPullFetchesKubeletAndKubectlThroughBinaryMirrors(t *testing.T) {
	files := map[string][]byte{"kubelet": []byte("kubelet bytes"), "kubectl": []byte("kubectl bytes")}
	lock, rel := binaryLock(t, files)
	base := daocloudFiles(t, rel.Kubernetes, files)
	dir := t.TempDir()
	_, stderr, err := runFake(t, presentHost(rel), "pull", "--lock", lock, "--dir", dir, "--binary-mirror", "http://127.0.0.1:1,"+base)
	if err != nil {
		t.Fatalf("pull: %v\n%s", err, stderr)
	}
	for name, body := range files {
		if got, err := os.ReadFile(filepath.Join(dir, "bin", name)); err != nil || string(got) != string(body) {
			t.Errorf("%s/bin/%s should hold the mirror's file: %q, %v", dir, name, got, err)
		}
		for _, want := range []string{
			name + " " + rel.Kubernetes + ": downloading 13 B from " + base,
			name + " " + rel.Kubernetes + ": 13 B from " + base + ", sha256 verified",
		} {
			if !strings.Contains(stderr, want) {
				t.Errorf("pull should say %q:\n%s", want, stderr)
			}
		}
	}

	// The dead mirror is passed over once, and not asked again for kubectl.
	if want := "kubelet " + rel.Kubernetes + " from http://127.0.0.1:1: "; strings.Count(stderr, "from http://127.0.0.1:1:") != 1 || !strings.Contains(stderr, want) ||
		!strings.Contains(stderr, "connection refused; trying "+base+" next") {
		t.Errorf("pull should say once that the dead mirror was passed over for the next:\n%s", stderr)
	}

	// A rerun finds both in place.
	_, stderr, err = runFake(t, presentHost(rel), "pull", "--lock", lock, "--dir", dir, "--binary-mirror", base)
	if err != nil || !strings.Contains(stderr, "kubectl "+rel.Kubernetes+": already in place") {
		t.Errorf("a rerun keeps the binaries: %v\n%s", err, stderr)
	}
}

func TestPullRefusesABinaryThatIsNotThePinnedOne(t *testing.T) {
	files := map[string][]byte{"kubelet": []byte("kubelet bytes"), "kubectl": []byte("kubectl bytes")}
	lock, rel := binaryLock(t, files)
	base := daocloudFiles(t, rel.Kubernetes, map[string][]byte{"kubelet": files["kubelet"], "kubectl": []byte("something else")})
	dir := t.TempDir()
	_, stderr, err := runFake(t, presentHost(rel), "pull", "--lock", lock, "--dir", dir, "--binary-mirror", base)
	if err == nil || !strings.Contains(err.Error(), "kubectl could not be brought into "+dir+"/bin: no binary mirror served what images.lock pins; name a mirror that has the file with --binary-mirror") {
		t.Fatalf("pull should fail on a wrong kubectl: %v\n%s", err, stderr)
	}
	for _, want := range []string{"kubectl " + rel.Kubernetes + " from " + base + ": sha256 mismatch: " + base + "/release/", "but images.lock pins " + fmt.Sprintf("%x", sha256.Sum256(files["kubectl"])), "refusing it"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("pull should say %q:\n%s", want, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "bin", "kubectl")); err == nil {
		t.Error("a refused kubectl must not be kept")
	}
	if _, err := os.Stat(filepath.Join(dir, "bin", "kubelet")); err != nil {
		t.Errorf("the good kubelet is kept: %v", err)
	}
}

// TestPullLeavesARunningNodesBinaries: DIR/bin/kubelet is what the node's
// agent runs; pulling another release (ahead of an upgrade) must not put
// that release's kubelet under a node whose apiserver is the older one.
func TestPullLeavesARunningNodesBinaries(t *testing.T) {
	files := map[string][]byte{"kubelet": []byte("kubelet bytes"), "kubectl": []byte("kubectl bytes")}
	lock, rel := binaryLock(t, files)
	base := daocloudFiles(t, rel.Kubernetes, files)
	dir := t.TempDir()
	marker := "apiVersion: dk8s.io/v1alpha1\nkind: Cluster\nname: dk8s\nnodeName: n\nserviceCIDR: 10.96.0.0/12\npodCIDR: 10.244.0.0/16\nkubernetesVersion: v1.30.0\n"
	if err := os.WriteFile(filepath.Join(dir, bootstrap.MarkerFile), []byte(marker), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := runFake(t, presentHost(rel), "pull", "--lock", lock, "--dir", dir, "--binary-mirror", base)
	if err != nil {
		t.Fatalf("pull: %v\n%s", err, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "bin", "kubelet")); err == nil {
		t.Error("the kubelet of another release was put where the node's kubelet runs from")
	}
	if want := "the cluster in " + dir + " runs v1.30.0"; !strings.Contains(stderr, want) {
		t.Errorf("pull should say %q:\n%s", want, stderr)
	}
}
