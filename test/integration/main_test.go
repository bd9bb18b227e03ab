// Package integration runs the dk8s binary as a user would, against the
// harness: a real Docker daemon and real registries on loopback holding
// images built from source (test/harness/up.sh). It needs DK8S_TEST_LOCK,
// the lock of the images the harness pushed, which 'make test' provides; run
// without it, every test fails and says so. Nothing here skips.
package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/images"
	"github.com/dk8s/dk8s/pkg/mirror"
)

// The harness's mirrors (test/harness/registries.sh).
const (
	flatMirror = "127.0.0.1:5001/google_containers"
	pathMirror = "127.0.0.1:5002/..."
	badMirror  = "127.0.0.1:5003/google_containers" // lacks etcd; kube-apiserver's tag holds another image
	deadMirror = "127.0.0.1:5009/google_containers" // nothing listens there
)

var (
	dk8sBin  string
	testLock string
)

func TestMain(m *testing.M) {
	closeInheritedOnExec()
	testLock = os.Getenv("DK8S_TEST_LOCK")
	dir, err := os.MkdirTemp("", "dk8s-it")
	if err != nil {
		panic(err)
	}
	dk8sBin = filepath.Join(dir, "dk8s")
	// Static, as 'make build' makes it: the node's containers start it from
	// an image with no libc.
	build := exec.Command("go", "build", "-o", dk8sBin, "github.com/dk8s/dk8s/cmd/dk8s")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building dk8s: %v\n%s", err, out)
		os.Exit(1)
	}
	if err := sweepLeftovers(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// sweepLeftovers resets the clusters an interrupted earlier run left
// behind: dk8s refuses, rightly, to start a second control plane on a host
// that runs one, so one killed test would fail every test after it in the
// next run. Only the tests' own directories are touched: the clusters
// newCluster keeps in dk8s-it-* and those in a test's t.TempDir. A host
// without the harness's Docker daemon is left for the tests to report.
func sweepLeftovers() error {
	ctx := context.Background()
	engine, err := containers.FromEnv(ctx)
	if err != nil {
		return nil
	}
	defer engine.Close()
	cs, err := engine.ListContainers(ctx, nil)
	if err != nil {
		return nil
	}
	tmp := os.TempDir()
	dirs := map[string]bool{}
	for _, c := range cs {
		d := c.Labels[containers.LabelDir]
		if filepath.Dir(d) == tmp && strings.HasPrefix(filepath.Base(d), "dk8s-it-") ||
			strings.HasPrefix(d, filepath.Join(tmp, "Test")) {
			dirs[d] = true
		}
	}
	for d := range dirs {
		fmt.Fprintf(os.Stderr, "resetting the cluster an interrupted test run left in %s\n", d)
		out, err := exec.Command(dk8sBin, "reset", "--purge", "--yes", "--dir", d).CombinedOutput()
		if err != nil {
			return fmt.Errorf("an interrupted test run left a cluster in %s, and resetting it failed: %v\n%s", d, err, out)
		}
	}
	return nil
}

// closeInheritedOnExec keeps what the run was handed (a descriptor beyond
// the standard three, such as a lock flock(1) holds for the run) from the
// daemons the tests start: dockerd, started again by restartDockerd, would
// otherwise hold it long after the run.
func closeInheritedOnExec() {
	entries, _ := os.ReadDir("/proc/self/fd")
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

// result is what a user sees of one dk8s run.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// dk8s runs the binary with args, under the harness's lock unless args
// name another.
func dk8s(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(dk8sBin, args...)
	cmd.Env = append(append(os.Environ(), "DK8S_LOCK="+testLock), env...)
	return runResult(t, cmd, "running dk8s")
}

// runResult runs cmd and returns what a user sees of it; a command that
// could not run at all (not an exit status) fails the test, saying what.
func runResult(t testing.TB, cmd *exec.Cmd, what string) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return r
}

// harness returns the Docker engine and the harness's release, failing the
// test loudly when the harness is not up.
func harness(t *testing.T) (*containers.Docker, *images.Release) {
	t.Helper()
	if testLock == "" {
		t.Fatal("DK8S_TEST_LOCK is not set: run the integration tests with 'make test', which brings up the harness (test/harness/up.sh)")
	}
	ctx := context.Background()
	engine, err := containers.FromEnv(ctx)
	if err != nil {
		t.Fatalf("the integration tests need the harness's Docker daemon: %v", err)
	}
	t.Cleanup(func() { engine.Close() })
	lock, err := images.ReadLock(testLock)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := lock.Release("")
	if err != nil {
		t.Fatal(err)
	}
	return engine, rel
}

// clean removes every name the image set can have in Docker's store (by
// name: content other tests share stays), so a test starts from an empty
// store as far as dk8s can tell.
func clean(t *testing.T, engine containers.Engine, rel *images.Release) {
	t.Helper()
	ctx := context.Background()
	for _, img := range rel.Images {
		names := append([]string{img.Name}, img.Aliases...)
		for _, m := range []string{flatMirror, pathMirror, badMirror} {
			names = append(names, mirrorRef(t, m, img.Name))
		}
		for _, n := range names {
			if err := engine.UntagImage(ctx, n); err != nil && !containers.IsNotFound(err) {
				t.Fatalf("removing %s: %v", n, err)
			}
		}
	}
}

// present returns the image Docker has under ref, or fails.
func present(t *testing.T, engine containers.Engine, ref string) containers.Image {
	t.Helper()
	img, err := engine.InspectImage(context.Background(), ref)
	if err != nil {
		t.Fatalf("%s should be in Docker's store: %v", ref, err)
	}
	return img
}

func absent(t *testing.T, engine containers.Engine, ref string) {
	t.Helper()
	if _, err := engine.InspectImage(context.Background(), ref); !containers.IsNotFound(err) {
		t.Fatalf("%s should not be in Docker's store (err %v)", ref, err)
	}
}

// assertComplete checks that every image of rel is in the store under its
// canonical name and aliases, as the content the lock names.
func assertComplete(t *testing.T, engine containers.Engine, rel *images.Release) {
	t.Helper()
	for _, img := range rel.Images {
		got := present(t, engine, img.Name)
		if v := images.Verify(img, got, "linux/amd64"); v.Verdict != images.Verified {
			t.Errorf("%s: %s (%s)", img.Name, v.Verdict, v.Detail)
		}
		for _, a := range img.Aliases {
			if alias := present(t, engine, a); alias.ID != got.ID {
				t.Errorf("alias %s is %s, want %s", a, alias.ID, got.ID)
			}
		}
	}
}

// mirrorRef is canonical's name on the harness mirror m: every harness
// mirror serves registry.k8s.io's and docker.io's images.
func mirrorRef(t *testing.T, m, canonical string) string {
	t.Helper()
	mm, err := mirror.Parse(m)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := mm.Ref(canonical)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// startDK8s starts dk8s in the background, for tests that interrupt it.
func startDK8s(t *testing.T, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(dk8sBin, args...)
	cmd.Env = append(os.Environ(), "DK8S_LOCK="+testLock)
	errb := &syncBuffer{}
	cmd.Stderr = errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, errb
}

// syncBuffer is a buffer a running command writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond every 20ms until it holds or d passes, and tells
// which. A caller checks the result and fails the test saying what did not
// happen in time, unless it reports the last attempt's error itself.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// readTestLock parses the harness's lock, for a test to change and write
// with writeLock.
func readTestLock(t *testing.T) *images.Lock {
	t.Helper()
	lock, err := images.ReadLock(testLock)
	if err != nil {
		t.Fatal(err)
	}
	return lock
}

// writeLock writes lock as a lock file in the test's own directory and
// returns its path.
func writeLock(t *testing.T, lock *images.Lock) string {
	t.Helper()
	data, err := lock.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "images.lock")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// closedAddr is a loopback address where nothing listens now: a dead
// mirror, or a port to forward (the VM's).
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
