package app

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/containers/containerstest"
)

// fakeEngine is the in-memory engine a test gives the commands, counting
// the connections made and closed.
type fakeEngine struct {
	*containerstest.Engine
	connected, closed int
}

func (f *fakeEngine) Close() error { f.closed++; return nil }

// runFake runs dk8s with args against fake, and checks that every
// connection the command made to it was closed.
func runFake(t *testing.T, fake *containerstest.Engine, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	fe := &fakeEngine{Engine: fake}
	stdout, stderr, err = runWith(t, func(context.Context) (engine, error) { fe.connected++; return fe, nil }, nil, args...)
	if fe.closed != fe.connected {
		t.Errorf("dk8s %s connected to the engine %d times and closed it %d times", strings.Join(args, " "), fe.connected, fe.closed)
	}
	return stdout, stderr, err
}

// fakeContainer is a container as dk8s start leaves it for the cluster
// "dk8s" kept in dir, in state (running, exited, ...).
func fakeContainer(name, image, dir, state string) *containers.Container {
	c := &containers.Container{
		ID: name + "-id", Name: name, Image: image, State: state, Running: state == "running",
		Labels: map[string]string{containers.LabelCluster: "dk8s", containers.LabelDir: dir, containers.LabelComponent: name},
	}
	if c.Running {
		c.StartedAt = time.Now().Add(-90 * time.Second)
	}
	return c
}

// fakeHost is a fake engine holding cs, by name.
func fakeHost(cs ...*containers.Container) *containerstest.Engine {
	e := &containerstest.Engine{Containers: map[string]*containers.Container{}}
	for _, c := range cs {
		e.Containers[c.Name] = c
	}
	return e
}

// refuseOnANode fails a test of stop or reset on a host where dk8s runs
// its node under systemd: bootstrap would stop those units, which are this
// host's, not the fake's. It fails rather than skips, so that a run that
// did not test stop and reset never passes as one that did.
func refuseOnANode(t *testing.T) {
	t.Helper()
	for _, unit := range []string{"dk8s-kubelet.service", "dk8s-containerd.service"} {
		if _, err := os.Stat(filepath.Join("/etc/systemd/system", unit)); err == nil {
			t.Fatalf("this host runs dk8s's %s, on which stop and reset would act: run the unit tests on a host without a dk8s node (CI's is one)", unit)
		}
	}
}
