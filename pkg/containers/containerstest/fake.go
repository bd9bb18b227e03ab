// Package containerstest is an in-memory containers.Engine for unit tests
// of the packages that drive the Docker Engine through dk8s's door: it keeps
// images by name and containers by name, and records the calls it got.
package containerstest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dk8s/dk8s/pkg/containers"
)

// Engine is a fake Docker daemon. The zero value is empty and usable.
type Engine struct {
	mu         sync.Mutex
	Images     map[string]containers.Image
	Containers map[string]*containers.Container
	Specs      map[string]containers.Spec
	Logs       map[string]string
	// Calls lists every mutating call, e.g. "create dk8s-etcd".
	Calls []string
	// Err, when it returns non-nil for a call ("create NAME", ...), makes
	// that call fail.
	Err func(call string) error
	// Registry holds what a pull of a name not in Images brings in, as
	// the daemon's registries would.
	Registry map[string]containers.Image
	// RegistryMirrors are the daemon's mirrors of Docker Hub, as Version
	// reports them.
	RegistryMirrors []string
	nextID          int
}

func (e *Engine) record(call string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.Calls = append(e.Calls, call)
	if e.Err != nil {
		return e.Err(call)
	}
	return nil
}

func notFound(what string) error { return fmt.Errorf("%s: %w", what, containers.ErrNotFound) }

// Version implements containers.Engine.
func (e *Engine) Version(context.Context) (containers.Version, error) {
	return containers.Version{Server: "20.10.24", APIVersion: "1.41", OS: "linux", Arch: "amd64", Store: "classic", RegistryMirrors: e.RegistryMirrors}, nil
}

// PullImage implements containers.Engine: it fails unless the image was put
// under ref beforehand (there is no registry).
func (e *Engine) PullImage(_ context.Context, ref string, _ containers.PullOptions) error {
	if err := e.record("pull " + ref); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.Images[ref]; ok {
		return nil
	}
	if img, ok := e.Registry[ref]; ok {
		e.Images[ref] = img
		return nil
	}
	return notFound(ref)
}

// InspectImage implements containers.Engine.
func (e *Engine) InspectImage(_ context.Context, ref string) (containers.Image, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if img, ok := e.Images[ref]; ok {
		return img, nil
	}
	for _, img := range e.Images {
		if img.ID == ref {
			return img, nil
		}
	}
	return containers.Image{}, notFound(ref)
}

// TagImage implements containers.Engine.
func (e *Engine) TagImage(ctx context.Context, source, target string) error {
	img, err := e.InspectImage(ctx, source)
	if err != nil {
		return err
	}
	if err := e.record("tag " + source + " " + target); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.Images == nil {
		e.Images = map[string]containers.Image{}
	}
	e.Images[target] = img
	return nil
}

// UntagImage implements containers.Engine.
func (e *Engine) UntagImage(_ context.Context, ref string) error {
	if err := e.record("untag " + ref); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.Images[ref]; !ok {
		return notFound(ref)
	}
	delete(e.Images, ref)
	return nil
}

// SaveImages implements containers.Engine with an empty archive.
func (e *Engine) SaveImages(context.Context, []string) (io.ReadCloser, error) {
	return io.NopCloser(&bytes.Buffer{}), nil
}

// LoadImages implements containers.Engine; it reads and drops the archive.
func (e *Engine) LoadImages(_ context.Context, r io.Reader) error {
	if err := e.record("load archive"); err != nil {
		return err
	}
	_, err := io.Copy(io.Discard, r)
	return err
}

// ImportImage implements containers.Engine: the layer is read, and ref
// names a new image.
func (e *Engine) ImportImage(_ context.Context, rootfs io.Reader, ref string, _ []string) error {
	if err := e.record("import " + ref); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, rootfs); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.Images == nil {
		e.Images = map[string]containers.Image{}
	}
	e.Images[ref] = containers.Image{ID: "sha256:imported-" + ref}
	return nil
}

// CreateContainer implements containers.Engine.
func (e *Engine) CreateContainer(_ context.Context, s containers.Spec) (string, error) {
	if err := e.record("create " + s.Name); err != nil {
		return "", err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.Containers == nil {
		e.Containers, e.Specs = map[string]*containers.Container{}, map[string]containers.Spec{}
	}
	if _, ok := e.Containers[s.Name]; ok {
		return "", fmt.Errorf("container %s exists", s.Name)
	}
	e.nextID++
	id := fmt.Sprintf("%064d", e.nextID)
	e.Containers[s.Name] = &containers.Container{ID: id, Name: s.Name, Image: s.Image, ImageID: e.Images[s.Image].ID, Labels: s.Labels, State: "created"}
	e.Specs[s.Name] = s
	return id, nil
}

func (e *Engine) container(name string) (*containers.Container, error) {
	c, ok := e.Containers[name]
	if !ok {
		return nil, notFound("container " + name)
	}
	return c, nil
}

// StartContainer implements containers.Engine.
func (e *Engine) StartContainer(_ context.Context, name string) error {
	if err := e.record("start " + name); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.container(name)
	if err != nil {
		return err
	}
	c.State, c.Running, c.StartedAt, c.Pid = "running", true, time.Now(), 1000+e.nextID
	return nil
}

// StopContainer implements containers.Engine.
func (e *Engine) StopContainer(_ context.Context, name string, _ time.Duration) error {
	if err := e.record("stop " + name); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.container(name)
	if err != nil {
		return err
	}
	c.State, c.Running, c.Pid = "exited", false, 0
	return nil
}

// RemoveContainer implements containers.Engine.
func (e *Engine) RemoveContainer(_ context.Context, name string) error {
	if err := e.record("remove " + name); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.container(name); err != nil {
		return err
	}
	delete(e.Containers, name)
	delete(e.Specs, name)
	return nil
}

// InspectContainer implements containers.Engine.
func (e *Engine) InspectContainer(_ context.Context, name string) (containers.Container, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.container(name)
	if err != nil {
		return containers.Container{}, err
	}
	return *c, nil
}

// ListContainers implements containers.Engine, by name order.
func (e *Engine) ListContainers(_ context.Context, labels map[string]string) ([]containers.Container, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []containers.Container
	for _, c := range e.Containers {
		match := true
		for k, v := range labels {
			match = match && c.Labels[k] == v
		}
		if match {
			out = append(out, *c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ContainerLogs implements containers.Engine with the text in Logs.
func (e *Engine) ContainerLogs(_ context.Context, name string, _ containers.LogsOptions, stdout, _ io.Writer) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.container(name); err != nil {
		return err
	}
	_, err := io.WriteString(stdout, e.Logs[name])
	return err
}

// Mutations returns the recorded calls that start with one of prefixes
// ("create", "stop", ...), in order.
func (e *Engine) Mutations(prefixes ...string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, c := range e.Calls {
		for _, p := range prefixes {
			if strings.HasPrefix(c, p+" ") {
				out = append(out, c)
			}
		}
	}
	return out
}
