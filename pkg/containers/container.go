package containers

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Container is what the daemon reports of one container.
type Container struct {
	ID           string
	Name         string
	Image        string
	ImageID      string // the content the container was created from
	Labels       map[string]string
	State        string // created, running, restarting, exited, ...
	Running      bool
	Pid          int
	RestartCount int
	ExitCode     int
	StartedAt    time.Time
	// Error is why the engine last failed to start it ("" for none).
	Error string
}

// LogsOptions tune ContainerLogs.
type LogsOptions struct {
	Follow bool
	// Tail is the number of lines from the end; "" or "all" for all.
	Tail string
}

// CreateContainer implements Engine.
func (d *Docker) CreateContainer(ctx context.Context, s Spec) (string, error) {
	var missing []string
	if s.Privileged {
		missing = MissingCapabilities()
	}
	return createContainer(ctx, d.c, s, missing)
}

// createContainer creates s through c for a process whose bounding set
// lacks the capabilities missing.
func createContainer(ctx context.Context, c containerCreator, s Spec, missing []string) (string, error) {
	cfg := &container.Config{
		Image:      s.Image,
		Entrypoint: s.Entrypoint,
		Cmd:        s.Args,
		Env:        s.Env,
		User:       s.User,
		Labels:     s.Labels,
	}
	res, err := createDroppingKnownCaps(ctx, c, client.ContainerCreateOptions{Config: cfg, HostConfig: hostConfig(s, missing), Name: s.Name})
	if err != nil {
		return "", fmt.Errorf("creating container %s: %w", s.Name, wrapErr(err))
	}
	return res.ID, nil
}

// hostConfig is the host side of s, for a process whose bounding set lacks
// the capabilities missing.
func hostConfig(s Spec, missing []string) *container.HostConfig {
	host := &container.HostConfig{}
	if s.HostNetwork {
		host.NetworkMode = "host"
	}
	if s.RestartAlways {
		host.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyAlways}
	}
	for _, m := range s.Mounts {
		var opts []string
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		if m.Propagation != "" {
			opts = append(opts, m.Propagation)
		}
		bind := m.Source + ":" + m.Target
		if len(opts) > 0 {
			bind += ":" + strings.Join(opts, ",")
		}
		host.Binds = append(host.Binds, bind)
	}
	if s.HostNamespaces {
		host.PidMode, host.IpcMode, host.UTSMode, host.CgroupnsMode = "host", container.IPCModeHost, "host", container.CgroupnsModeHost
	}
	if s.Privileged {
		if len(missing) == 0 {
			host.Privileged = true
		} else {
			host.CapAdd, host.CapDrop = []string{"ALL"}, missing
			host.SecurityOpt = []string{"seccomp=unconfined", "apparmor=unconfined"}
			host.Resources.DeviceCgroupRules = []string{"a *:* rwm"}
		}
	}
	return host
}

// StartContainer implements Engine.
func (d *Docker) StartContainer(ctx context.Context, name string) error {
	_, err := d.c.ContainerStart(ctx, name, client.ContainerStartOptions{})
	return wrapErr(err)
}

// StopContainer implements Engine.
func (d *Docker) StopContainer(ctx context.Context, name string, grace time.Duration) error {
	secs := int(grace.Seconds())
	_, err := d.c.ContainerStop(ctx, name, client.ContainerStopOptions{Timeout: &secs})
	return wrapErr(err)
}

// RemoveContainer implements Engine. It removes a stopped container; the
// host directories bound into it are never touched.
func (d *Docker) RemoveContainer(ctx context.Context, name string) error {
	_, err := d.c.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true})
	return wrapErr(err)
}

// InspectContainer implements Engine.
func (d *Docker) InspectContainer(ctx context.Context, name string) (Container, error) {
	res, err := d.c.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		return Container{}, wrapErr(err)
	}
	c := res.Container
	out := Container{ID: c.ID, Name: strings.TrimPrefix(c.Name, "/"), RestartCount: c.RestartCount, ImageID: c.Image}
	if c.Config != nil {
		out.Image, out.Labels = c.Config.Image, c.Config.Labels
	}
	if st := c.State; st != nil {
		out.State, out.Running, out.Pid, out.ExitCode, out.Error = string(st.Status), st.Running, st.Pid, st.ExitCode, st.Error
		out.StartedAt, _ = time.Parse(time.RFC3339Nano, st.StartedAt)
	}
	return out, nil
}

// ListContainers implements Engine: every container, running or not, that
// carries all of labels.
func (d *Docker) ListContainers(ctx context.Context, labels map[string]string) ([]Container, error) {
	f := client.Filters{}
	for k, v := range labels {
		f = f.Add("label", k+"="+v)
	}
	res, err := d.c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, wrapErr(err)
	}
	var out []Container
	for _, s := range res.Items {
		name := ""
		if len(s.Names) > 0 {
			name = strings.TrimPrefix(s.Names[0], "/")
		}
		out = append(out, Container{ID: s.ID, Name: name, Image: s.Image, Labels: s.Labels, State: string(s.State), Running: s.State == container.StateRunning})
	}
	return out, nil
}

// ContainerLogs implements Engine, writing the container's stdout and
// stderr to the writers given.
func (d *Docker) ContainerLogs(ctx context.Context, name string, opts LogsOptions, stdout, stderr io.Writer) error {
	tail := opts.Tail
	if tail == "" {
		tail = "all"
	}
	rc, err := d.c.ContainerLogs(ctx, name, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: opts.Follow, Tail: tail})
	if err != nil {
		return wrapErr(err)
	}
	defer rc.Close()
	_, err = stdcopy.StdCopy(stdout, stderr, rc)
	if ctx.Err() != nil {
		return nil
	}
	return err
}
