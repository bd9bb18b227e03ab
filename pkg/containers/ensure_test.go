package containers_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/containers/containerstest"
)

func spec(args ...string) containers.Spec {
	return containers.Spec{
		Name: "dk8s-etcd", Image: "registry.k8s.io/etcd:3.7.0-0", Args: args,
		Labels: map[string]string{containers.LabelComponent: "etcd", containers.LabelDir: "/var/lib/dk8s"},
	}.WithHash()
}

func TestEnsureReconcilesBySpecHashAndImage(t *testing.T) {
	ctx := context.Background()
	e := &containerstest.Engine{Images: map[string]containers.Image{"registry.k8s.io/etcd:3.7.0-0": {ID: "sha256:1"}}}
	steps := []struct {
		do   func()
		spec containers.Spec
		want string
	}{
		{nil, spec("--a"), "created"},
		{nil, spec("--a"), "unchanged"},
		{func() { e.StopContainer(ctx, "dk8s-etcd", 0) }, spec("--a"), "started"},
		{nil, spec("--b"), "replaced (its configuration changed)"},
		{func() { e.Images["registry.k8s.io/etcd:3.7.0-0"] = containers.Image{ID: "sha256:2"} }, spec("--b"), "replaced (its image registry.k8s.io/etcd:3.7.0-0 changed)"},
		{nil, spec("--b"), "unchanged"},
	}
	for i, s := range steps {
		if s.do != nil {
			s.do()
		}
		got, err := containers.Ensure(ctx, e, s.spec)
		if err != nil || got.String() != s.want {
			t.Fatalf("step %d: got %q, %v; want %q", i, got, err, s.want)
		}
		c, _ := e.InspectContainer(ctx, "dk8s-etcd")
		if !c.Running {
			t.Fatalf("step %d: the container should run after Ensure", i)
		}
	}
}

func TestEnsureRefusesWhatItDidNotMake(t *testing.T) {
	ctx := context.Background()
	e := &containerstest.Engine{}
	e.CreateContainer(ctx, containers.Spec{Name: "dk8s-etcd"})
	if _, err := containers.Ensure(ctx, e, spec()); err == nil || !strings.Contains(err.Error(), "dk8s did not make") {
		t.Errorf("got %v", err)
	}
	other := spec()
	other.Labels[containers.LabelDir] = "/srv/other"
	e2 := &containerstest.Engine{}
	e2.CreateContainer(ctx, other)
	if _, err := containers.Ensure(ctx, e2, spec()); err == nil || !strings.Contains(err.Error(), "kept in /srv/other") {
		t.Errorf("got %v", err)
	}
	if m := e2.Mutations("stop", "remove"); len(m) != 0 {
		t.Errorf("a refused Ensure touched the container: %v", m)
	}
}
