package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestFaultMirrorDiesMidPull kills a mirror in the middle of a layer's
// transfer: the image whose layer was cut comes from the next mirror, and
// the pull succeeds with every image complete and verified.
func TestFaultMirrorDiesMidPull(t *testing.T) {
	engine, rel := harness(t)
	clean(t, engine, rel)
	// Harness images are tens of MB: their big layers are cut 1 MiB in.
	dying := startDyingMirror(t, "127.0.0.1:5001", 1<<20)
	dead := dying.addr() + "/google_containers"
	t.Cleanup(func() {
		// dk8s removes the mirror's names itself; this is for a failed run.
		// Names that are not there are no error worth reporting.
		for _, img := range rel.Images {
			_ = engine.UntagImage(context.Background(), mirrorRef(t, dead, img.Name))
		}
	})

	r := dk8s(t, nil, "pull", "--parallel", "1", "--mirror", dead+","+pathMirror)
	blob, sent, total := dying.cutBlob()
	if blob == "" {
		t.Fatalf("the mirror never cut a blob: nothing was tested (were the layers still in Docker's store?)\n%s", r)
	}
	t.Logf("the mirror died %d of %d bytes into %s", sent, total, blob)
	if sent <= 0 || sent >= total {
		t.Fatalf("the cut of %s should fall inside it: %d of %d bytes sent", blob, sent, total)
	}
	if r.code != 0 {
		t.Fatalf("the pull should finish from the next mirror:\n%s", r)
	}
	assertComplete(t, engine, rel)
	// The image whose layer was cut came from the next mirror.
	repo := strings.TrimPrefix(blob[:strings.Index(blob, "/blobs/")], "/v2/")
	cut := ""
	for _, img := range rel.Images {
		if strings.HasPrefix(mirrorRef(t, dead, img.Name), dying.addr()+"/"+repo+":") {
			cut = img.Name
		}
	}
	if cut == "" {
		t.Fatalf("no image of the lock is %s on the dying mirror", repo)
	}
	if line := lineWith(r.stdout, cut); !strings.Contains(line, "127.0.0.1:5002") {
		t.Errorf("%s, cut mid-layer, should come from 127.0.0.1:5002: %q", cut, line)
	}
	// The user is told which mirror failed: retried (a reset or refused
	// connection is temporary) or passed over.
	failed := false
	for _, l := range strings.Split(r.stderr, "\n") {
		failed = failed || strings.Contains(l, dead) && (strings.Contains(l, "retrying in") || strings.Contains(l, " refused: "))
	}
	if !failed {
		t.Errorf("stderr should name the mirror that died, %s, and what it did:\n%s", dead, r.stderr)
	}
}

// dyingMirror is a reverse proxy in front of a registry that dies in the
// middle of a blob: it passes every request through until a blob response
// longer than cutAfter has sent cutAfter bytes, then cuts that connection
// and every other, and refuses new ones, as a mirror whose host goes down
// mid-pull would. Dead for good, it also fails the retries Docker makes of
// a broken layer download.
type dyingMirror struct {
	backend   string
	cutAfter  int64
	ln        net.Listener
	srv       *http.Server
	transport *http.Transport

	mu          sync.Mutex
	dead        bool
	blob        string
	sent, total int64
}

func startDyingMirror(t *testing.T, backend string, cutAfter int64) *dyingMirror {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &dyingMirror{backend: backend, cutAfter: cutAfter, ln: ln, transport: &http.Transport{Proxy: nil}}
	m.srv = &http.Server{Handler: m, ErrorLog: log.New(io.Discard, "", 0)}
	go m.srv.Serve(ln)
	t.Cleanup(func() {
		m.srv.Close()
		m.transport.CloseIdleConnections()
	})
	return m
}

func (m *dyingMirror) addr() string { return m.ln.Addr().String() }

// cutBlob returns the path of the blob cut, with the bytes of it sent and
// its length; "" when no blob was cut.
func (m *dyingMirror) cutBlob() (path string, sent, total int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.blob, m.sent, m.total
}

func (m *dyingMirror) isDead() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dead
}

// die records the cut, stops listening (a connection is then refused) and
// closes idle connections; requests on those still open are dropped.
func (m *dyingMirror) die(blob string, sent, total int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dead {
		return
	}
	m.dead, m.blob, m.sent, m.total = true, blob, sent, total
	m.ln.Close()
	m.srv.SetKeepAlivesEnabled(false)
}

func (m *dyingMirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if m.isDead() {
		// http.ErrAbortHandler closes the connection without an answer.
		panic(http.ErrAbortHandler)
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+m.backend+r.URL.RequestURI(), r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header, out.ContentLength = r.Header.Clone(), r.ContentLength
	resp, err := m.transport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	blob := r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") && resp.StatusCode == http.StatusOK
	if !blob || resp.ContentLength <= m.cutAfter {
		if _, err := io.Copy(w, untilDead{m, resp.Body}); err != nil {
			panic(http.ErrAbortHandler)
		}
		return
	}
	sent, _ := io.CopyN(w, untilDead{m, resp.Body}, m.cutAfter)
	w.(http.Flusher).Flush()
	m.die(r.URL.Path, sent, resp.ContentLength)
	panic(http.ErrAbortHandler)
}

// untilDead reads r until the mirror dies: a transfer under way when
// another is cut breaks off too.
type untilDead struct {
	m *dyingMirror
	r io.Reader
}

func (u untilDead) Read(p []byte) (int, error) {
	if u.m.isDead() {
		return 0, errors.New("the mirror died")
	}
	return u.r.Read(p)
}

// TestFaultEtcdRemovedByHand: `docker rm -f dk8s-etcd` takes the cluster
// down; ps says so; start brings it back with the data, which lives on the
// host.
func TestFaultEtcdRemovedByHand(t *testing.T) {
	harness(t)
	c := newCluster(t)
	c.start()
	c.writeMarker("before-rm")
	if out, err := exec.Command("docker", "rm", "-f", "dk8s-etcd").CombinedOutput(); err != nil {
		t.Fatalf("docker rm: %v %s", err, out)
	}
	ps := c.run("ps")
	if ps.code == 0 || !strings.Contains(lineWith(ps.stdout, "etcd "), "absent") {
		t.Errorf("ps should show etcd absent and exit non-zero:\n%s", ps)
	}
	r := c.start()
	if !strings.Contains(r.stderr, "dk8s-etcd created") {
		t.Errorf("start should recreate etcd:\n%s", r)
	}
	c.assertMarker("before-rm")
}

// TestFaultInterruptedStart: Ctrl-C in the middle of start, then a rerun
// finishes the job.
func TestFaultInterruptedStart(t *testing.T) {
	harness(t)
	c := newCluster(t)
	cmd, stderr := startDK8s(t, "start", "--control-plane-only", "--dir", c.dir)
	if !waitFor(2*time.Minute, func() bool { return strings.Contains(stderr.String(), "✓ etcd is healthy") }) {
		cmd.Process.Kill()
		t.Fatalf("etcd never came up:\n%s", stderr)
	}
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("an interrupted start should exit 130, got %d:\n%s", code, stderr)
	}
	if strings.Contains(stderr.String(), "✓ kube-scheduler is healthy") {
		t.Fatalf("start finished before the interrupt; nothing was tested:\n%s", stderr)
	}
	c.start()
	c.waitHealthy(time.Minute)
	c.writeMarker("after-rerun")
	c.assertMarker("after-rerun")
}

// TestFaultDiskFull fills the file system that holds etcd's data: writes
// fail while it is full, and once space is freed the cluster recovers by
// itself with the data written before.
func TestFaultDiskFull(t *testing.T) {
	harness(t)
	c := newCluster(t)
	os.MkdirAll(c.dir, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1100m", "tmpfs", c.dir).CombinedOutput(); err != nil {
		t.Fatalf("mounting a small file system: %v\n%s", err, out)
	}
	// Cleanups run last-registered first: purge, then unmount, even if the
	// purge fails.
	t.Cleanup(func() { exec.Command("umount", c.dir).Run() })
	t.Cleanup(c.purge)
	c.start()
	c.writeMarker("before-full")

	filler := filepath.Join(c.dir, "filler")
	exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=1M").Run() // until ENOSPC
	var werr error
	big := strings.Repeat("x", 512*1024)
	if !waitFor(time.Minute, func() bool {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("during-full-%d", time.Now().UnixNano())}, Data: map[string]string{"big": big}}
		_, werr = c.client().CoreV1().ConfigMaps("default").Create(context.Background(), cm, metav1.CreateOptions{})
		return werr != nil
	}) {
		t.Fatal("writes should fail while etcd's disk is full, but every write for a minute succeeded")
	}
	t.Logf("what a user sees while the disk is full: %v", werr)

	os.Remove(filler)
	c.waitHealthy(3 * time.Minute)
	c.assertMarker("before-full")
	if out, err := c.kubectl("create", "configmap", "after-full", "--from-literal=a=b"); err != nil {
		t.Errorf("writes should work again once space is freed: %v\n%s", err, out)
	}
}
