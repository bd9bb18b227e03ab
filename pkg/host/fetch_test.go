package host

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v7"

	"github.com/dk8s/dk8s/pkg/images"
	"github.com/dk8s/dk8s/pkg/mirror"
)

// here is this machine's platform, as the lock and dl.k8s.io's paths
// spell it.
var here = runtime.GOOS + "/" + runtime.GOARCH

func sum(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }

// binary is a lock entry for name on dl.k8s.io, pinned to sha for this
// platform ("" pins nothing).
func binary(name, sha string) images.Binary {
	return images.Binary{Name: name, URL: "https://dl.k8s.io/release/v1.37.2/bin/{os}/{arch}/" + name,
		SHA256: map[string]string{here: sha}}
}

func release(bins ...images.Binary) *images.Release {
	return &images.Release{Kubernetes: "v1.37.2", Binaries: bins}
}

// fileServer serves files by path, counting the requests of each.
type served struct {
	*httptest.Server
	mu   sync.Mutex
	gets map[string]int
}

func (s *served) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets[path]
}

func fileServer(t *testing.T, files map[string][]byte) *served {
	t.Helper()
	s := &served{gets: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.gets[r.URL.Path]++
		s.mu.Unlock()
		body, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

// statusServer answers every request with code.
func statusServer(t *testing.T, code int) *served {
	t.Helper()
	s := &served{gets: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.gets[r.URL.Path]++
		s.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(s.Close)
	return s
}

// closedPort is an address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// fetcher tries the base URLs in order, without waiting between retries.
func fetcher(bases ...string) *Fetcher {
	f := &Fetcher{NewBackOff: func() backoff.BackOff { return &backoff.ZeroBackOff{} }}
	for _, b := range bases {
		m, err := mirror.ParseBinary(b)
		if err != nil {
			panic(err)
		}
		f.Mirrors = append(f.Mirrors, m)
	}
	return f
}

// events records what a Fetcher reports, a line each but for the bytes.
func (f *Fetcher) record() *[]string {
	var mu sync.Mutex
	var lines []string
	f.Events = func(e BinaryEvent) {
		if e.Phase == BinaryBytes {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf("%s %s %s %d", e.Name, e.Phase, e.Mirror, e.Total))
	}
	return &lines
}

func daocloudPath(name string) string { return "/dl.k8s.io/release/v1.37.2/bin/" + here + "/" + name }

func TestFetchFromAMirrorLaidOutLikeDaoClouds(t *testing.T) {
	kubelet, kubectl := []byte("kubelet bytes"), []byte("kubectl bytes")
	srv := fileServer(t, map[string][]byte{daocloudPath("kubelet"): kubelet, daocloudPath("kubectl"): kubectl})
	f := fetcher(srv.URL + "/dl.k8s.io")
	events := f.record()
	dir := t.TempDir()
	rel := release(binary("kubelet", sum(kubelet)), binary("kubectl", sum(kubectl)))
	for _, name := range []string{"kubelet", "kubectl"} {
		body := map[string][]byte{"kubelet": kubelet, "kubectl": kubectl}[name]
		dst := filepath.Join(dir, "bin", name)
		got, err := f.Fetch(context.Background(), rel, name, dst)
		if err != nil {
			t.Fatal(err)
		}
		if got.Mirror != srv.URL+"/dl.k8s.io" || got.Size != int64(len(body)) || got.Present {
			t.Errorf("%s: %+v", name, got)
		}
		assertBinary(t, dst, body)
	}
	want := []string{
		fmt.Sprintf("kubelet fetching %s/dl.k8s.io %d", srv.URL, len(kubelet)),
		fmt.Sprintf("kubelet done %s/dl.k8s.io %d", srv.URL, len(kubelet)),
	}
	if strings.Join((*events)[:2], "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant first:\n%s", strings.Join(*events, "\n"), strings.Join(want, "\n"))
	}

	// Already there and still what the lock pins: not fetched again.
	got, err := f.Fetch(context.Background(), rel, "kubelet", filepath.Join(dir, "bin", "kubelet"))
	if err != nil || !got.Present || srv.count(daocloudPath("kubelet")) != 1 {
		t.Errorf("a pinned kubelet already there is kept: %+v %v, %d requests", got, err, srv.count(daocloudPath("kubelet")))
	}
	// Another file in its place is replaced.
	os.WriteFile(filepath.Join(dir, "bin", "kubectl"), []byte("an older kubectl"), 0o755)
	if got, err := f.Fetch(context.Background(), rel, "kubectl", filepath.Join(dir, "bin", "kubectl")); err != nil || got.Present {
		t.Errorf("a kubectl that is not the pinned one is replaced: %+v %v", got, err)
	}
	assertBinary(t, filepath.Join(dir, "bin", "kubectl"), kubectl)
}

func TestFetchFallsBackPastDeadMirrors(t *testing.T) {
	body := []byte("kubelet bytes")
	good := fileServer(t, map[string][]byte{daocloudPath("kubelet"): body})
	missing := statusServer(t, http.StatusNotFound)
	failing := statusServer(t, http.StatusInternalServerError)
	dead := closedPort(t)
	f := fetcher(dead, missing.URL+"/dl.k8s.io", failing.URL+"/dl.k8s.io", good.URL+"/dl.k8s.io")
	f.Tries = 2
	events := f.record()
	dst := filepath.Join(t.TempDir(), "kubelet")
	got, err := f.Fetch(context.Background(), release(binary("kubelet", sum(body))), "kubelet", dst)
	if err != nil || got.Mirror != good.URL+"/dl.k8s.io" {
		t.Fatalf("the good mirror should serve it: %+v %v", got, err)
	}
	assertBinary(t, dst, body)
	if n := missing.count(daocloudPath("kubelet")); n != 1 {
		t.Errorf("a 404 is final for that mirror: asked %d times", n)
	}
	if n := failing.count(daocloudPath("kubelet")); n != 2 {
		t.Errorf("a 500 is tried again, Tries times: asked %d times", n)
	}
	all := strings.Join(*events, "\n")
	for _, want := range []string{"kubelet fallback " + dead, "kubelet fallback " + missing.URL, "kubelet retry " + failing.URL, "kubelet fallback " + failing.URL, "kubelet done " + good.URL} {
		if !strings.Contains(all, want) {
			t.Errorf("events should hold %q:\n%s", want, all)
		}
	}

	// The dead mirror is not asked again in this run; every mirror's
	// answer is in the error when none serves the file.
	f.Mirrors = f.Mirrors[:3]
	_, err = f.Fetch(context.Background(), release(binary("kubectl", sum(body))), "kubectl", filepath.Join(t.TempDir(), "kubectl"))
	var fe *FetchError
	if !errors.As(err, &fe) || len(fe.Tried) != 3 {
		t.Fatalf("want a FetchError with three mirrors tried, got %v", err)
	}
	if !errors.Is(fe.Tried[0].Err, mirror.ErrDown) {
		t.Errorf("the dead mirror should be skipped as down: %v", fe.Tried[0].Err)
	}
	for _, want := range []string{"no binary mirror served kubectl v1.37.2 for " + here, dead + ": skipped", "HTTP 404 Not Found at " + missing.URL + daocloudPath("kubectl"),
		"HTTP 500 Internal Server Error at " + failing.URL, "--binary-mirror"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error should say %q:\n%v", want, err)
		}
	}
}

// TestFetchPassesOverADroppedMirror: a mirror whose address drops the
// connection (the firewall's usual answer) times out on the dial; that is
// not tried again, nor for the next file, but passed over at once.
func TestFetchPassesOverADroppedMirror(t *testing.T) {
	body := []byte("kubelet bytes")
	good := fileServer(t, map[string][]byte{daocloudPath("kubelet"): body, daocloudPath("kubectl"): body})
	dropped := "http://dropped.example"
	f := fetcher(dropped, good.URL+"/dl.k8s.io")
	var dials atomic.Int32
	f.Client = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == "dropped.example:80" {
			dials.Add(1)
			// A dial whose deadline has passed fails as one that got no answer.
			return (&net.Dialer{Timeout: time.Nanosecond}).DialContext(ctx, network, strings.TrimPrefix(good.URL, "http://"))
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
	for _, name := range []string{"kubelet", "kubectl"} {
		if _, err := f.Fetch(context.Background(), release(binary(name, sum(body))), name, filepath.Join(t.TempDir(), name)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("a mirror that gives no answer should be dialled once in a run, not %d times", n)
	}
}

// TestFetchStopsOnAHostThatCannotWrite: a destination this host cannot
// write is its own fault; every mirror is not tried in turn (and asked
// again and again) to end in "no binary mirror served it".
func TestFetchStopsOnAHostThatCannotWrite(t *testing.T) {
	body := []byte("kubelet bytes")
	one := fileServer(t, map[string][]byte{daocloudPath("kubelet"): body})
	two := fileServer(t, map[string][]byte{daocloudPath("kubelet"): body})
	f := fetcher(one.URL+"/dl.k8s.io", two.URL+"/dl.k8s.io")
	notADir := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(notADir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := f.Fetch(context.Background(), release(binary("kubelet", sum(body))), "kubelet", filepath.Join(notADir, "kubelet"))
	var fe *FetchError
	if err == nil || errors.As(err, &fe) || !strings.Contains(err.Error(), "on this host") {
		t.Errorf("want this host's error, not the mirrors': %v", err)
	}
	if n, m := one.count(daocloudPath("kubelet")), two.count(daocloudPath("kubelet")); n != 1 || m != 0 {
		t.Errorf("asked the first mirror %d times and the second %d; want once and not at all", n, m)
	}
}

func TestFetchRefusesAFileThatIsNotThePinnedOne(t *testing.T) {
	body := []byte("kubelet bytes")
	wrong := fileServer(t, map[string][]byte{daocloudPath("kubelet"): []byte("other bytes")})
	dir := t.TempDir()
	dst := filepath.Join(dir, "bin", "kubelet")
	_, err := fetcher(wrong.URL+"/dl.k8s.io").Fetch(context.Background(), release(binary("kubelet", sum(body))), "kubelet", dst)
	var ce *ChecksumError
	if !errors.As(err, &ce) {
		t.Fatalf("want a ChecksumError, got %v", err)
	}
	for _, want := range []string{"sha256 mismatch", wrong.URL + "/dl.k8s.io: sha256 mismatch: " + wrong.URL + daocloudPath("kubelet"), "has sha256 " + sum([]byte("other bytes")), "images.lock pins " + sum(body), "refusing it", "--binary-mirror"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error should say %q:\n%v", want, err)
		}
	}
	if n := wrong.count(daocloudPath("kubelet")); n != 1 {
		t.Errorf("a wrong file is not fetched again from the same mirror: %d", n)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "bin")); len(entries) != 0 {
		t.Errorf("nothing of a refused file is kept: %v", entries)
	}

	// The next mirror's right copy is taken.
	good := fileServer(t, map[string][]byte{daocloudPath("kubelet"): body})
	if _, err := fetcher(wrong.URL+"/dl.k8s.io", good.URL+"/dl.k8s.io").Fetch(context.Background(), release(binary("kubelet", sum(body))), "kubelet", dst); err != nil {
		t.Fatal(err)
	}
	assertBinary(t, dst, body)
}

func TestFetchRefusesWhatTheLockDoesNotPin(t *testing.T) {
	srv := fileServer(t, map[string][]byte{daocloudPath("kubectl"): []byte("kubectl bytes")})
	f := fetcher(srv.URL + "/dl.k8s.io")
	dst := filepath.Join(t.TempDir(), "kubectl")
	_, err := f.Fetch(context.Background(), release(binary("kubectl", "")), "kubectl", dst)
	if !errors.Is(err, ErrUnpinned) || !strings.Contains(err.Error(), "images.lock pins no sha256 for kubectl v1.37.2 on "+here) {
		t.Errorf("an unpinned kubectl: %v", err)
	}
	_, err = f.Fetch(context.Background(), release(), "kubectl", dst)
	if !errors.Is(err, ErrUnpinned) || !strings.Contains(err.Error(), "images.lock names no kubectl for Kubernetes v1.37.2") {
		t.Errorf("a kubectl not in the lock: %v", err)
	}
	other := release(binary("kubectl", sum([]byte("kubectl bytes"))))
	other.Binaries[0].SHA256 = map[string]string{"linux/s390x": sum([]byte("kubectl bytes"))}
	f.Platform = "linux/riscv64"
	if _, err := f.Fetch(context.Background(), other, "kubectl", dst); !errors.Is(err, ErrUnpinned) || !strings.Contains(err.Error(), "on linux/riscv64") {
		t.Errorf("a kubectl pinned for another platform only: %v", err)
	}
	if len(srv.gets) != 0 {
		t.Errorf("nothing unpinned is even asked for: %v", srv.gets)
	}
	if _, err := os.Stat(dst); err == nil {
		t.Error("nothing is written")
	}
}

func TestFetchForAnotherPlatform(t *testing.T) {
	arm := []byte("arm64 kubelet")
	srv := fileServer(t, map[string][]byte{"/dl.k8s.io/release/v1.37.2/bin/linux/arm64/kubelet": arm})
	f := fetcher(srv.URL + "/dl.k8s.io")
	f.Platform = "linux/arm64"
	b := binary("kubelet", sum([]byte("amd64 kubelet")))
	b.SHA256["linux/arm64"] = sum(arm)
	dst := filepath.Join(t.TempDir(), "kubelet")
	if _, err := f.Fetch(context.Background(), release(b), "kubelet", dst); err != nil {
		t.Fatal(err)
	}
	assertBinary(t, dst, arm)
}

func TestFetchRetriesATemporaryFailure(t *testing.T) {
	body := []byte("kubelet bytes")
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		if first {
			// Cut short: the length promised, half the bytes sent.
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.Write(body[:4])
			return
		}
		w.Write(body)
	}))
	defer srv.Close()
	f := fetcher(srv.URL + "/dl.k8s.io")
	events := f.record()
	dst := filepath.Join(t.TempDir(), "kubelet")
	if _, err := f.Fetch(context.Background(), release(binary("kubelet", sum(body))), "kubelet", dst); err != nil {
		t.Fatal(err)
	}
	assertBinary(t, dst, body)
	if !strings.Contains(strings.Join(*events, "\n"), "kubelet retry") {
		t.Errorf("a download cut short is retried on the same mirror:\n%s", strings.Join(*events, "\n"))
	}
}

func TestFetchGivesUpOnAStalledMirror(t *testing.T) {
	body := []byte("kubelet bytes")
	unblock := make(chan struct{})
	stalled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body[:4])
		w.(http.Flusher).Flush()
		select { // then nothing, until the client gives up
		case <-r.Context().Done():
		case <-unblock:
		}
	}))
	defer stalled.Close()
	defer close(unblock)
	good := fileServer(t, map[string][]byte{daocloudPath("kubelet"): body})
	f := fetcher(stalled.URL+"/dl.k8s.io", good.URL+"/dl.k8s.io")
	f.StallTimeout, f.Tries = 200*time.Millisecond, 1
	var said []string
	f.Events = func(e BinaryEvent) {
		if e.Phase == BinaryFallback {
			said = append(said, e.String())
		}
	}
	dst := filepath.Join(t.TempDir(), "kubelet")
	got, err := f.Fetch(context.Background(), release(binary("kubelet", sum(body))), "kubelet", dst)
	if err != nil || got.Mirror != good.URL+"/dl.k8s.io" {
		t.Fatalf("the stalled mirror should be given up for the next: %+v %v", got, err)
	}
	assertBinary(t, dst, body)
	if len(said) != 1 || !strings.Contains(said[0], "/kubelet stalled: no byte for 200ms after 4 bytes; trying "+good.URL) {
		t.Errorf("the stall should be named: %q", said)
	}
}

func TestFetchFromALockURLElsewhere(t *testing.T) {
	body := []byte("kubelet bytes")
	srv := fileServer(t, map[string][]byte{"/release/v1.37.2/bin/" + here + "/kubelet": body})
	b := binary("kubelet", sum(body))
	b.URL = srv.URL + "/release/v1.37.2/bin/{os}/{arch}/kubelet"
	dst := filepath.Join(t.TempDir(), "kubelet")
	got, err := fetcher("daocloud-files").Fetch(context.Background(), release(b), "kubelet", dst)
	if err != nil || got.Mirror != strings.TrimPrefix(srv.URL, "http://") {
		t.Fatalf("a lock's own URL is used as it is: %+v %v", got, err)
	}
	assertBinary(t, dst, body)
}

func assertBinary(t *testing.T, path string, want []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil || string(data) != string(want) {
		t.Fatalf("%s should hold %q: %q, %v", path, want, data, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o755 {
		t.Errorf("%s should be 0755: %v", path, st.Mode())
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) > 2 {
		t.Errorf("no temporary file is left beside %s: %v", path, entries)
	}
}
