package bootstrap

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/containers/containerstest"
)

// The agent finds its own image by its PID (it shares the host's PID
// namespace), and says which of the node's agents is gone or stopped.
func TestAgentSeesItselfAndTheNodesAgents(t *testing.T) {
	ctx := context.Background()
	e := &containerstest.Engine{Containers: map[string]*containers.Container{
		"dk8s-agent":      {Name: "dk8s-agent", Image: "dk8s/dk8s:v1", Running: true, Pid: os.Getpid()},
		"other":           {Name: "other", Image: "busybox", Running: true, Pid: 1},
		"dk8s-containerd": {Name: "dk8s-containerd", Running: true, State: "running"},
	}}
	if img, err := ownImage(ctx, e); err != nil || img != "dk8s/dk8s:v1" {
		t.Errorf("own image %q, %v", img, err)
	}
	if got := missingAgents(ctx, e); got != "dk8s-kubelet is gone" {
		t.Errorf("missing: %q", got)
	}
	e.Containers["dk8s-kubelet"] = &containers.Container{Name: "dk8s-kubelet", State: "exited"}
	if got := missingAgents(ctx, e); got != "dk8s-kubelet is exited" {
		t.Errorf("stopped: %q", got)
	}
	e.Containers["dk8s-kubelet"] = &containers.Container{Name: "dk8s-kubelet", Running: true, State: "running"}
	if got := missingAgents(ctx, e); got != "" {
		t.Errorf("both running: %q", got)
	}
	delete(e.Containers, "dk8s-agent")
	if _, err := ownImage(ctx, e); err == nil || !strings.Contains(err.Error(), "--pid=host") {
		t.Errorf("not in a container of its own: %v", err)
	}
}
