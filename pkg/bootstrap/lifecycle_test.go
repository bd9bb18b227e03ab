package bootstrap

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/containers/containerstest"
)

// fakeCluster is a fake daemon running the control plane of the cluster
// kept in dir: etcd and the apiserver running, the scheduler stopped, the
// controller-manager absent.
func fakeCluster(t *testing.T, dir string) *containerstest.Engine {
	t.Helper()
	ctx := context.Background()
	e := &containerstest.Engine{Logs: map[string]string{"dk8s-etcd": "etcd says hello\n"}}
	for _, comp := range []string{"etcd", "kube-apiserver", "kube-scheduler"} {
		spec := containers.Spec{Name: containerName(comp), Image: "registry.k8s.io/" + comp + ":v1.37.2",
			Labels: map[string]string{containers.LabelComponent: comp, containers.LabelCluster: "dk8s", containers.LabelDir: dir}}
		if _, err := e.CreateContainer(ctx, spec); err != nil {
			t.Fatal(err)
		}
		if comp != "kube-scheduler" {
			e.StartContainer(ctx, spec.Name)
		}
	}
	e.Calls = nil
	return e
}

func TestStatusShowsEveryComponent(t *testing.T) {
	dir := t.TempDir()
	e := fakeCluster(t, dir)
	sts, err := Status(context.Background(), e, Config{ClusterName: "dk8s", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]ComponentStatus{}
	var names []string
	for _, s := range sts {
		got[s.Component] = s
		names = append(names, s.Component)
	}
	if want := []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "csr-approver", "etcd-snapshotter"}; !slices.Equal(names, want) {
		t.Errorf("rows %v, want %v (no node rows on a host that is not a node)", names, want)
	}
	if s := got["etcd"]; s.State != "running" || s.Version != "v1.37.2" || s.Healthy {
		t.Errorf("etcd: %+v (nothing answers its probe here, so it is not healthy)", s)
	}
	if s := got["kube-scheduler"]; s.State != "created" || s.Healthy {
		t.Errorf("scheduler: %+v", s)
	}
	if s := got["kube-controller-manager"]; s.State != "absent" || s.Health != "-" {
		t.Errorf("controller-manager: %+v", s)
	}
}

func TestStopStopsInReverseOrderAndKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	e := fakeCluster(t, dir)
	stopped, err := Stop(context.Background(), e, Config{ClusterName: "dk8s", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"dk8s-scheduler", "dk8s-apiserver", "dk8s-etcd"}; !slices.Equal(stopped, want) {
		t.Errorf("stopped %v, want %v", stopped, want)
	}
	if m := e.Mutations("remove", "create"); len(m) != 0 {
		t.Errorf("stop removed or made containers: %v", m)
	}
	if _, err := Stop(context.Background(), e, Config{ClusterName: "dk8s", Dir: "/srv/other"}); err == nil || !strings.Contains(err.Error(), "pass --dir "+dir) {
		t.Errorf("stop for another directory should refuse, naming this one: %v", err)
	}
}

func TestResetRemovesOnlyItsOwnAndPurgesOnlyItsMarkedDir(t *testing.T) {
	dir := t.TempDir()
	e := fakeCluster(t, dir)
	other := t.TempDir()
	if _, err := Reset(context.Background(), e, Config{ClusterName: "dk8s", Dir: other}, ResetOptions{}); err == nil || !strings.Contains(err.Error(), "runs the cluster kept in "+dir) {
		t.Errorf("a reset for another directory should refuse: %v", err)
	}
	if m := e.Mutations("stop", "remove"); len(m) != 0 {
		t.Fatalf("a refused reset touched containers: %v", m)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600)
	if _, err := Reset(context.Background(), e, Config{ClusterName: "dk8s", Dir: dir}, ResetOptions{Purge: true}); err == nil || !strings.Contains(err.Error(), "refusing to purge") {
		t.Errorf("purging an unmarked directory should refuse: %v", err)
	}
	if m := e.Mutations("remove"); len(m) != 0 {
		t.Fatalf("a refused purge removed containers: %v", m)
	}
	if _, err := Reset(context.Background(), e, Config{ClusterName: "dk8s", Dir: dir}, ResetOptions{}); err == nil || !strings.Contains(err.Error(), "not a dk8s cluster directory") {
		t.Errorf("a reset of a directory of other files should refuse (its node clean-up is for dk8s's own): %v", err)
	}
	if err := writeSettings(dir, Settings{Name: "dk8s", NodeName: "n"}); err != nil {
		t.Fatal(err)
	}
	removed, err := Reset(context.Background(), e, Config{ClusterName: "dk8s", Dir: dir}, ResetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"dk8s-scheduler", "dk8s-apiserver", "dk8s-etcd"}; !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Error("a reset without --purge must keep the directory")
	}
}

func TestLogs(t *testing.T) {
	dir := t.TempDir()
	e := fakeCluster(t, dir)
	var out bytes.Buffer
	if err := Logs(context.Background(), e, "etcd", containers.LogsOptions{}, &out, &out); err != nil || out.String() != "etcd says hello\n" {
		t.Errorf("got %q, %v", out.String(), err)
	}
	if err := Logs(context.Background(), e, "kube-proxy", containers.LogsOptions{}, &out, &out); err == nil || !strings.Contains(err.Error(), "kube-apiserver") {
		t.Errorf("an unknown component should list the known ones: %v", err)
	}
	if err := Logs(context.Background(), e, "controller-manager", containers.LogsOptions{}, &out, &out); err == nil || !strings.Contains(err.Error(), "dk8s start") {
		t.Errorf("a component with no container should say to start: %v", err)
	}
}

// A reset with the node agent still running is refused: the agent would
// join the machine again at once.
func TestResetRefusesWhileTheAgentRuns(t *testing.T) {
	e := &containerstest.Engine{Containers: map[string]*containers.Container{
		AgentContainer: {Name: AgentContainer, Running: true, State: "running"},
	}}
	_, err := Reset(context.Background(), e, Config{ClusterName: "dk8s", Dir: t.TempDir()}, ResetOptions{})
	if err == nil || !strings.Contains(err.Error(), "docker rm -f dk8s-agent") {
		t.Errorf("got %v", err)
	}
	if len(e.Calls) != 0 {
		t.Errorf("a refused reset changed %v", e.Calls)
	}
}
