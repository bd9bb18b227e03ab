package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/host"
)

// AgentConfig is what the node agent (`dk8s agent`, run as a container
// with Docker's socket and the cluster directory) keeps true on its
// machine.
type AgentConfig struct {
	// Dir is the cluster directory, bound into the agent at the same path.
	Dir string
	// JoinArgs are `dk8s join`'s arguments (the server first); the token
	// goes in Env, not on a command line Docker shows.
	JoinArgs []string
	Env      []string
	// Check is how often the node's agents are looked at; Converge how
	// often a whole join is run anyway (a changed setting, a lost file).
	Check, Converge time.Duration
	// Out receives each join's output.
	Out io.Writer
}

// joinContainer is the one-shot container an agent runs a join in.
const joinContainer = "dk8s-join"

// AgentContainer is the name the printed join command gives the node
// agent's container.
const AgentContainer = "dk8s-agent"

// RunAgent keeps this machine a node until ctx ends: it runs `dk8s join`
// on the host (in a one-shot container in the host's namespaces, entering
// its mount namespace as the node's agents do, so the join sees the
// host's files and tools while the agent itself needs no privilege but
// Docker's socket),
// then watches the node's runtime and kubelet containers and joins again
// (which puts back what is missing and applies what changed) when one is
// gone or stopped, and every ac.Converge anyway. A failed join is retried
// with a growing pause.
func RunAgent(ctx context.Context, engine containers.Engine, ac AgentConfig) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	image, err := ownImage(ctx, engine)
	if err != nil {
		return err
	}
	// The same binary, on the host, for the join to run as.
	shim, err := host.Install(self, filepath.Join(ac.Dir, "bin", "dk8s"))
	if err != nil {
		return err
	}
	spec := containers.Spec{
		Name:        joinContainer,
		Image:       image,
		Entrypoint:  []string{self, "host-exec", "--"},
		Args:        append([]string{shim, "join"}, ac.JoinArgs...),
		Env:         ac.Env,
		Labels:      map[string]string{containers.LabelComponent: "join", containers.LabelDir: ac.Dir},
		HostNetwork: true, HostNamespaces: true, Privileged: true,
	}
	pause := 10 * time.Second
	var lastJoin time.Time
	joined := false
	for {
		due := !joined || time.Since(lastJoin) >= ac.Converge
		if !due {
			if missing := missingAgents(ctx, engine); missing != "" {
				fmt.Fprintf(ac.Out, "dk8s agent: %s; joining again to put it back\n", missing)
				due = true
			}
		}
		wait := ac.Check
		if due {
			lastJoin = time.Now()
			if err := runOnce(ctx, engine, spec, ac.Out); err != nil {
				fmt.Fprintf(ac.Out, "dk8s agent: join failed: %v; again in %s\n", err, pause)
				wait, pause = pause, min(2*pause, 2*time.Minute)
			} else {
				joined, pause = true, 10*time.Second
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// missingAgents says which of the node's agent containers is gone or not
// running; "" when both run. Under systemd the units are systemd's to keep.
func missingAgents(ctx context.Context, engine containers.Engine) string {
	if host.SystemdIsInit() {
		return ""
	}
	for _, c := range hostAgents() {
		got, err := engine.InspectContainer(ctx, containerName(c.Name))
		if containers.IsNotFound(err) {
			return containerName(c.Name) + " is gone"
		}
		if err == nil && !got.Running && got.State != "restarting" {
			return containerName(c.Name) + " is " + got.State
		}
	}
	return ""
}

// runOnce runs spec's container to its end, copies its output to out and
// removes it; a non-zero exit is an error.
func runOnce(ctx context.Context, engine containers.Engine, spec containers.Spec, out io.Writer) error {
	if err := engine.RemoveContainer(ctx, spec.Name); err != nil && !containers.IsNotFound(err) {
		return err
	}
	if _, err := engine.CreateContainer(ctx, spec); err != nil {
		return err
	}
	defer engine.RemoveContainer(context.WithoutCancel(ctx), spec.Name)
	if err := engine.StartContainer(ctx, spec.Name); err != nil {
		return err
	}
	var c containers.Container
	for {
		var err error
		if c, err = engine.InspectContainer(ctx, spec.Name); err != nil {
			return err
		}
		if !c.Running && c.State != "created" {
			break
		}
		select {
		case <-ctx.Done():
			engine.StopContainer(context.WithoutCancel(ctx), spec.Name, 10*time.Second)
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	_ = engine.ContainerLogs(ctx, spec.Name, containers.LogsOptions{}, out, out)
	if c.ExitCode != 0 {
		return fmt.Errorf("exit status %d", c.ExitCode)
	}
	return nil
}

// ownImage is the image of the container this process is: with the host's
// PID namespace (--pid=host), the container whose main process has this
// process's PID.
func ownImage(ctx context.Context, engine containers.Engine) (string, error) {
	list, err := engine.ListContainers(ctx, nil)
	if err != nil {
		return "", err
	}
	for _, c := range list {
		got, err := engine.InspectContainer(ctx, c.Name)
		if err == nil && got.Running && got.Pid == os.Getpid() {
			return got.Image, nil
		}
	}
	return "", errors.New("this agent found no container of its own: run it as a container with --pid=host and Docker's socket (see 'dk8s token create --print-join-command')")
}

// AgentStartErrors are, by container, why the engine could not start the
// node's agents' supervising containers: none under systemd, whose units
// they are not.
func AgentStartErrors(ctx context.Context, engine containers.Engine) map[string]string {
	if host.SystemdIsInit() {
		return nil
	}
	out := map[string]string{}
	for _, c := range hostAgents() {
		got, err := engine.InspectContainer(ctx, containerName(c.Name))
		if err == nil && !got.Running && got.Error != "" {
			out[got.Name] = got.Error
		}
	}
	return out
}
