package integration

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dk8s/dk8s/pkg/images"
)

// The host binaries the tests fetch through binary mirrors: those the
// harness built for its release (test/harness/build-k8s.sh).
var hostBinaries = []string{"kubelet", "kubectl"}

// harnessBinary is the harness's build of name for version.
func harnessBinary(version, name string) string {
	return filepath.Join(filepath.Dir(testLock), "bin-"+version, name)
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// lockWithBinaries writes the harness's lock with its default release's
// kubelet and kubectl where the real lock has them, on dl.k8s.io, pinned
// for this machine to the harness's builds, as images.lock pins upstream's.
// It returns the lock and the release.
func lockWithBinaries(t *testing.T) (string, *images.Release) {
	t.Helper()
	lock := readTestLock(t)
	rel, _ := lock.Release("")
	rel.Binaries = nil
	for _, name := range hostBinaries {
		rel.Binaries = append(rel.Binaries, images.Binary{Name: name,
			URL:    "https://dl.k8s.io/release/" + rel.Kubernetes + "/bin/{os}/{arch}/" + name,
			SHA256: map[string]string{runtime.GOOS + "/" + runtime.GOARCH: fileSum(t, harnessBinary(rel.Kubernetes, name))}})
	}
	return writeLock(t, lock), rel
}

// fileMirror is a local server laid out as DaoCloud's file mirror:
// /dl.k8s.io/release/VERSION/bin/OS/ARCH/NAME. It serves files (by name)
// for version, counts the requests, and returns its base URL.
type fileMirror struct {
	base     string
	requests atomic.Int64
}

func newFileMirror(t *testing.T, version string, files map[string]string) *fileMirror {
	t.Helper()
	m := &fileMirror{}
	prefix := "/dl.k8s.io/release/" + version + "/bin/" + runtime.GOOS + "/" + runtime.GOARCH + "/"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.requests.Add(1)
		name, ok := strings.CutPrefix(r.URL.Path, prefix)
		if path, found := files[name]; ok && found {
			http.ServeFile(w, r, path)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	m.base = srv.URL + "/dl.k8s.io"
	return m
}

// statusMirror answers every request with code.
func statusMirror(t *testing.T, code int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }))
	t.Cleanup(srv.Close)
	return srv.URL + "/dl.k8s.io"
}

// deadBinaryMirror is a base URL on a loopback port where nothing listens.
func deadBinaryMirror(t *testing.T) string {
	t.Helper()
	return "http://" + closedAddr(t) + "/dl.k8s.io"
}

// harnessMirror serves the harness's kubelet and kubectl of version.
func harnessMirror(t *testing.T, version string) *fileMirror {
	files := map[string]string{}
	for _, name := range hostBinaries {
		files[name] = harnessBinary(version, name)
	}
	return newFileMirror(t, version, files)
}

// assertBinaries checks that dir/bin holds kubelet and kubectl as rel pins
// them, executable.
func assertBinaries(t *testing.T, dir string, rel *images.Release) {
	t.Helper()
	for _, b := range rel.Binaries {
		path := filepath.Join(dir, "bin", b.Name)
		st, err := os.Stat(path)
		if err != nil {
			t.Fatalf("%s should be there: %v", path, err)
		}
		if got, want := fileSum(t, path), b.SHA256[runtime.GOOS+"/"+runtime.GOARCH]; got != want {
			t.Errorf("%s has sha256 %s, want the pinned %s", path, got, want)
		}
		if st.Mode().Perm() != 0o755 {
			t.Errorf("%s is %v, want 0755", path, st.Mode().Perm())
		}
	}
}

func TestPullBinariesThroughMirrors(t *testing.T) {
	harness(t)
	lock, rel := lockWithBinaries(t)
	v := rel.Kubernetes
	good := harnessMirror(t, v)
	dead, missing, failing := deadBinaryMirror(t), statusMirror(t, http.StatusNotFound), statusMirror(t, http.StatusInternalServerError)
	dir := t.TempDir()

	r := dk8s(t, nil, "pull", "--lock", lock, "--mirror", flatMirror, "--dir", dir,
		"--binary-mirror", strings.Join([]string{dead, missing, failing, good.base}, ","))
	if r.code != 0 {
		t.Fatalf("pull through the binary mirrors failed:\n%s", r)
	}
	assertBinaries(t, dir, rel)
	for _, name := range hostBinaries {
		if line := lineWith(r.stderr, "✓ "+name+" "+v+": "); !strings.HasSuffix(line, " MB from "+good.base+", sha256 verified") {
			t.Errorf("pull should say %s came from %s, verified: %q\n%s", name, good.base, line, r.stderr)
		}
	}
	for _, want := range []string{
		"kubelet " + v + " from " + dead + ": ",
		"connection refused; trying " + missing + " next",
		"kubelet " + v + " from " + missing + ": HTTP 404 Not Found at " + missing + "/release/" + v + "/bin/linux/" + runtime.GOARCH + "/kubelet; trying " + failing + " next",
		"kubelet " + v + " from " + failing + ": HTTP 500 Internal Server Error at " + failing,
		"; trying " + good.base + " next",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("pull should say %q:\n%s", want, r.stderr)
		}
	}

	t.Run("a rerun keeps them", func(t *testing.T) {
		before := good.requests.Load()
		r := dk8s(t, nil, "pull", "--lock", lock, "--mirror", flatMirror, "--dir", dir, "--binary-mirror", good.base)
		if r.code != 0 || !strings.Contains(r.stderr, "✓ kubectl "+v+": already in place") || good.requests.Load() != before {
			t.Errorf("a rerun should fetch nothing:\n%s", r)
		}
	})

	t.Run("a wrong file is refused", func(t *testing.T) {
		// A mirror serving another release's builds under this one's paths.
		wrong := newFileMirror(t, v, map[string]string{"kubelet": harnessBinary(olderVersion, "kubelet"), "kubectl": harnessBinary(olderVersion, "kubectl")})
		dir := t.TempDir()
		r := dk8s(t, nil, "pull", "--lock", lock, "--mirror", flatMirror, "--dir", dir, "--binary-mirror", wrong.base)
		if r.code == 0 {
			t.Fatalf("pull should fail when the only binary mirror serves wrong files:\n%s", r)
		}
		for _, name := range hostBinaries {
			for _, want := range []string{
				"! " + name + " " + v + " from " + wrong.base + ": sha256 mismatch: " + wrong.base + "/release/" + v + "/bin/linux/" + runtime.GOARCH + "/" + name,
				"has sha256 " + fileSum(t, harnessBinary(olderVersion, name)) + ", but images.lock pins " + fileSum(t, harnessBinary(v, name)) + ": refusing it",
			} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("pull should say %q:\n%s", want, r.stderr)
				}
			}
		}
		if !strings.Contains(r.stderr, "kubelet and kubectl could not be brought into "+dir+"/bin: no binary mirror served what images.lock pins; name a mirror that has the file with --binary-mirror") {
			t.Errorf("pull should end saying what it could not bring:\n%s", r.stderr)
		}
		if entries, _ := os.ReadDir(filepath.Join(dir, "bin")); len(entries) != 0 {
			t.Errorf("nothing of a refused file may be kept in %s/bin: %v", dir, entries)
		}

		// With a good mirror after it, the good copies are taken.
		r = dk8s(t, []string{"DK8S_BINARY_MIRROR=" + wrong.base + "," + good.base}, "pull", "--lock", lock, "--mirror", flatMirror, "--dir", dir)
		if r.code != 0 || !strings.Contains(r.stderr, "refusing it, as this mirror serves other bytes than dl.k8s.io; trying "+good.base+" next") {
			t.Fatalf("pull should pass the wrong mirror over for the good one:\n%s", r)
		}
		assertBinaries(t, dir, rel)
	})

	t.Run("what the lock does not pin is not fetched", func(t *testing.T) {
		before := good.requests.Load()
		dir := t.TempDir()
		r := dk8s(t, nil, "pull", "--mirror", flatMirror, "--dir", dir, "--binary-mirror", good.base)
		if r.code != 0 {
			t.Fatalf("an unpinned binary is no failure of the pull:\n%s", r)
		}
		for _, want := range []string{
			"kubelet " + v + ": not fetched: images.lock pins no sha256 for kubelet " + v + " on linux/" + runtime.GOARCH + ", so a download of it cannot be trusted; 'dk8s start' takes --kubelet-binary",
			"kubectl " + v + ": not fetched: images.lock pins no sha256 for kubectl",
		} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("pull should say %q:\n%s", want, r.stderr)
			}
		}
		if good.requests.Load() != before {
			t.Error("nothing unpinned is even asked for")
		}
		if entries, _ := os.ReadDir(filepath.Join(dir, "bin")); len(entries) != 0 {
			t.Errorf("%s/bin should hold nothing: %v", dir, entries)
		}
	})

	t.Run("dk8s kubectl without a cluster says what to run", func(t *testing.T) {
		r := dk8s(t, []string{"DK8S_DIR=" + dir}, "kubectl", "get", "nodes")
		if r.code == 0 || !strings.Contains(r.stderr, "no cluster in "+dir+" (it has no admin.conf): start one with 'dk8s start'") {
			t.Errorf("want a refusal naming dk8s start:\n%s", r)
		}
	})
}
