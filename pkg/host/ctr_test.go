package host

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/containers/containerstest"
	"github.com/dk8s/dk8s/pkg/host/hosttest"
)

const ctrPrefix = "ctr --address /run/dk8s/containerd/containerd.sock -n k8s.io "

// savingEngine remembers which images were saved for the runtime.
type savingEngine struct {
	*containerstest.Engine
	saved [][]string
}

func (e *savingEngine) SaveImages(ctx context.Context, refs []string) (io.ReadCloser, error) {
	e.saved = append(e.saved, refs)
	return io.NopCloser(strings.NewReader("archive of " + strings.Join(refs, ","))), nil
}

func TestImportImages(t *testing.T) {
	const pause, dns = "registry.k8s.io/pause:3.10", "registry.k8s.io/coredns/coredns:v1.12.0"
	record := filepath.Join(t.TempDir(), "containerd", "imported")
	engine := &savingEngine{Engine: &containerstest.Engine{Images: map[string]containers.Image{
		pause: {ID: "sha256:p1"}, dns: {ID: "sha256:d1"},
	}}}
	// held lists what the runtime holds, by name.
	held := map[string]bool{}
	ctr := &hosttest.Runner{Answer: func(cmd string, _ int) ([]byte, error) {
		if name, ok := strings.CutPrefix(cmd, ctrPrefix+"images ls -q name=="); ok && held[name] {
			return []byte("sha256:abc\n"), nil
		}
		return nil, nil
	}}
	imports := func() int { return len(ctr.Commands(ctrPrefix + "images import -")) }

	ids, err := ImportImages(context.Background(), ctr, engine, "ctr", record, []string{pause, dns})
	if err != nil {
		t.Fatal(err)
	}
	if ids[pause] != "sha256:p1" || ids[dns] != "sha256:d1" {
		t.Errorf("the Docker image IDs should come back: %v", ids)
	}
	if imports() != 1 || len(engine.saved) != 1 || strings.Join(engine.saved[0], ",") != pause+","+dns {
		t.Fatalf("a first start imports both images at once: saved %v, ran %q", engine.saved, ctr.Calls)
	}
	if got := string(ctr.Stdin[len(ctr.Calls)-1]); got != "archive of "+pause+","+dns {
		t.Errorf("ctr import should read Docker's archive, got %q", got)
	}
	data, _ := os.ReadFile(record)
	if string(data) != dns+" sha256:d1\n"+pause+" sha256:p1\n" {
		t.Errorf("the record should list each image by Docker ID:\n%s", data)
	}

	held[pause], held[dns] = true, true
	if _, err := ImportImages(context.Background(), ctr, engine, "ctr", record, []string{pause, dns}); err != nil {
		t.Fatal(err)
	}
	if imports() != 1 || len(engine.saved) != 1 {
		t.Errorf("the record matches and the runtime holds both: nothing to import, saved %v", engine.saved)
	}

	held[dns] = false                                        // the runtime lost it (its state was purged)
	engine.Images[pause] = containers.Image{ID: "sha256:p2"} // re-pulled under the same name
	if _, err := ImportImages(context.Background(), ctr, engine, "ctr", record, []string{pause, dns}); err != nil {
		t.Fatal(err)
	}
	if imports() != 2 || strings.Join(engine.saved[1], ",") != pause+","+dns {
		t.Errorf("a changed image and a lost one are imported again: saved %v", engine.saved)
	}
	held[dns] = true
	if _, err := ImportImages(context.Background(), ctr, engine, "ctr", record, []string{pause, dns}); err != nil || imports() != 2 {
		t.Errorf("the record should hold the re-pulled ID (err %v, saved %v)", err, engine.saved)
	}

	ctr.Answer = func(cmd string, _ int) ([]byte, error) {
		if strings.HasSuffix(cmd, "images import -") {
			return nil, errors.New("exit status 1: unexpected EOF")
		}
		return nil, nil
	}
	_, err = ImportImages(context.Background(), ctr, engine, "ctr", filepath.Join(t.TempDir(), "imported"), []string{pause})
	if err == nil || !strings.Contains(err.Error(), "loading "+pause+" into the pod runtime: exit status 1: unexpected EOF") {
		t.Errorf("a failed import should say what it loaded and why it failed: %v", err)
	}
	if _, err := ImportImages(context.Background(), ctr, engine, "ctr", record, []string{"registry.k8s.io/missing:1"}); err == nil || !strings.Contains(err.Error(), "registry.k8s.io/missing:1") {
		t.Errorf("an image Docker lacks should be named: %v", err)
	}
}

func TestWaitRuntime(t *testing.T) {
	ctr := &hosttest.Runner{Answer: func(cmd string, n int) ([]byte, error) {
		if n < 2 {
			return nil, errors.New("exit status 1: connection refused")
		}
		return []byte("Server:\n  Version: 1.7.24\n"), nil
	}}
	if err := WaitRuntime(context.Background(), ctr, "/usr/bin/ctr", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	want := "/usr/bin/ctr --address /run/dk8s/containerd/containerd.sock version"
	if len(ctr.Calls) != 3 || len(ctr.Commands(want)) != 3 {
		t.Errorf("should ask %q until it answers, three times: %q", want, ctr.Calls)
	}

	down := &hosttest.Runner{Answer: func(string, int) ([]byte, error) { return nil, errors.New("connection refused") }}
	err := WaitRuntime(context.Background(), down, "ctr", 0)
	if err == nil || !strings.Contains(err.Error(), "did not answer on /run/dk8s/containerd/containerd.sock: connection refused") {
		t.Errorf("a runtime that never answers should be named with the last error: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WaitRuntime(ctx, down, "ctr", time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled wait should end at once: %v", err)
	}
}

func TestStopPods(t *testing.T) {
	ctr := &hosttest.Runner{Answer: func(cmd string, n int) ([]byte, error) {
		switch strings.TrimPrefix(cmd, ctrPrefix) {
		case "containers ls -q":
			return []byte("aaa\nbbb\n"), nil
		case "tasks ls":
			if n <= 1 {
				return []byte("TASK PID STATUS\naaa 10 RUNNING\nbbb 11 STOPPED\n"), nil
			}
			return []byte("TASK PID STATUS\naaa 10 STOPPED\nbbb 11 STOPPED\n"), nil
		}
		return nil, nil
	}}
	StopPods(context.Background(), ctr, "ctr")
	want := []string{
		"containers ls -q", "tasks ls",
		"tasks kill --signal SIGKILL aaa", "tasks kill --signal SIGKILL bbb",
		"tasks ls", "tasks ls",
		"tasks delete --force aaa", "containers delete aaa",
		"tasks delete --force bbb", "containers delete bbb",
	}
	for i := range want {
		want[i] = ctrPrefix + want[i]
	}
	if strings.Join(ctr.Calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("ran:\n%s\nwant:\n%s", strings.Join(ctr.Calls, "\n"), strings.Join(want, "\n"))
	}

	none := &hosttest.Runner{}
	StopPods(context.Background(), none, "ctr")
	if strings.Join(none.Calls, "|") != ctrPrefix+"containers ls -q|"+ctrPrefix+"tasks ls|"+ctrPrefix+"tasks ls" {
		t.Errorf("with no pods nothing is killed: %q", none.Calls)
	}
}

func TestPodNetns(t *testing.T) {
	if got := taskPIDs("TASK PID STATUS\naaa 10 RUNNING\nbbb 11 STOPPED\nccc 0 RUNNING\n"); !slices.Equal(got, []int{10}) {
		t.Errorf("taskPIDs = %v, want [10]", got)
	}
	// A pod's namespace is known by its device and inode: here a file
	// linked into the directory stands for a pinned namespace.
	dir, procs := t.TempDir(), t.TempDir()
	for _, n := range []string{"cni-pod", "cni-other-runtimes"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(dir, "cni-pod"), filepath.Join(procs, "net")); err != nil {
		t.Fatal(err)
	}
	got := podNetns(dir, []string{filepath.Join(procs, "net"), filepath.Join(procs, "gone")})
	if !slices.Equal(got, []string{filepath.Join(dir, "cni-pod")}) {
		t.Errorf("podNetns = %v, want only the pod's", got)
	}
}
