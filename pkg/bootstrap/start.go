package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/host"
	"github.com/dk8s/dk8s/pkg/images"
	"github.com/dk8s/dk8s/pkg/pki"
)

// Event is progress Start reports.
type Event struct {
	Step      string // preflight, pki, image, container, healthy, lock
	Component string
	Message   string
	Done      bool // the step finished (a ✓ line)
	Warning   bool
}

// StartOptions tune Start.
type StartOptions struct {
	// Events hears of every step; nil for silence.
	Events func(Event)
	// Timeout bounds the wait for each component's health; 0 means 3 min.
	Timeout time.Duration
	// LockWait bounds the wait for another start on the same directory to
	// finish; 0 means do not wait.
	LockWait time.Duration
	// Probe asks a component for its health once; nil means its Endpoint
	// (a node agent embedding dk8s, or a test, may ask otherwise).
	Probe func(ctx context.Context, p *pki.PKI, component string) error
	// Client makes the Kubernetes client of a kubeconfig; nil means
	// client-go's, from the file.
	Client func(kubeconfig string) (kubernetes.Interface, error)

	// listening reads the host's listening sockets for the host checks;
	// nil means /proc's. A seam for unit tests alone.
	listening func() map[int]string
}

func (o StartOptions) probe(ctx context.Context, p *pki.PKI, component string) error {
	if o.Probe != nil {
		return o.Probe(ctx, p, component)
	}
	return Probe(ctx, p, component, 2*time.Second)
}

func (o StartOptions) client(kubeconfig string) (kubernetes.Interface, error) {
	if o.Client != nil {
		return o.Client(kubeconfig)
	}
	return clientFor(kubeconfig)
}

// ComponentError is a component that did not come up, with its last log
// lines and what to check next.
type ComponentError struct {
	Component string
	Err       error
	Logs      string
	Hint      string
}

func (e *ComponentError) Error() string {
	msg := fmt.Sprintf("%s did not become healthy: %v", e.Component, e.Err)
	if e.Logs != "" {
		msg += "\nits last log lines:\n" + indent(e.Logs)
	}
	if e.Hint != "" {
		msg += "\nnext: " + e.Hint
	}
	return msg
}

// UnfinishedError is a start (or join) that stopped after it had made
// part of the cluster: what it made is kept, Docker keeps it running, and
// the same command run again makes what is missing and changes nothing
// else. It says so, for the component that was late is often up a minute
// later (a slow machine).
type UnfinishedError struct {
	Err error
	// Command is the command to run again: "dk8s start" or "dk8s join".
	Command string
	// Waited is how long each component was waited for (--timeout).
	Waited time.Duration
}

func (e *UnfinishedError) Error() string {
	return fmt.Sprintf("%v\n%s stopped before the cluster was whole: what it made is kept, and Docker keeps it running. "+
		"Run the same %s again to finish (it makes only what is missing); on a slow machine give each component longer than %s with --timeout 10m",
		e.Err, e.Command, e.Command, e.Waited)
}

func (e *UnfinishedError) Unwrap() error { return e.Err }

// Start brings the control plane of cfg up with the images of rel: it
// checks the host, makes (or keeps) the PKI and kubeconfigs, creates each
// component's container that is missing or whose spec changed (and only
// those), and waits for each to be healthy, in order. Everything it keeps
// lives under cfg.Dir on the host; no container holds state. A rerun with
// the same configuration changes nothing.
func Start(ctx context.Context, engine containers.Engine, cfg Config, rel *images.Release, opts StartOptions) error {
	// The node's agents and the control plane's components report from
	// goroutines of their own: one line at a time.
	var mu sync.Mutex
	emit := func(e Event) {
		if opts.Events != nil {
			mu.Lock()
			defer mu.Unlock()
			opts.Events(e)
		}
	}
	if err := cfg.Resolve(); err != nil {
		return err
	}
	specs, err := Plan(cfg, rel)
	if err != nil {
		return err
	}
	// The directory is checked before dk8s writes a thing in it: a --dir
	// naming a directory of other files (/etc) is refused untouched.
	if _, err := os.Stat(cfg.Dir); err == nil {
		if _, err := claimDir(cfg.Dir, cfg.ClusterName); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return err
	}
	unlock, err := lockDir(ctx, cfg.Dir, opts.LockWait, emit)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := claimDir(cfg.Dir, cfg.ClusterName); err != nil {
		return err // made by another start while this one waited
	}

	if err := checkHost(ctx, engine, cfg, opts.listening, true, emit); err != nil {
		return err
	}
	if err := missingImages(ctx, engine, specs); err != nil {
		return err
	}
	from, err := checkUpgrade(ctx, engine, cfg, rel)
	if err != nil {
		return err
	}
	shim, err := findShim(cfg)
	if err != nil {
		return err
	}
	var node *nodeTools
	if cfg.Node {
		// Everything the node needs from the host is found before anything
		// is changed.
		if node, err = findNodeTools(ctx, engine, cfg, rel, emit); err != nil {
			return err
		}
	}
	emit(Event{Step: "preflight", Message: "host checks passed", Done: true})
	if from != "" && from != rel.Kubernetes {
		emit(Event{Step: "upgrade", Message: fmt.Sprintf("upgrading from Kubernetes %s to %s: etcd, the apiserver, the controller-manager, the scheduler, kubelet, then the add-ons", from, rel.Kubernetes)})
	}
	settings := settingsOf(cfg)
	settings.KubernetesVersion = from
	if err := writeSettings(cfg.Dir, settings); err != nil {
		return err
	}
	// Recorded once everything is up: an upgrade stopped halfway is checked
	// from the version the cluster ran before it.
	finished := func() error {
		settings.KubernetesVersion = rel.Kubernetes
		return writeSettings(cfg.Dir, settings)
	}

	pcfg, err := cfg.PKIConfig()
	if err != nil {
		return err
	}
	p, made, err := EnsurePKI(cfg.PKIDir(), pcfg)
	if err != nil {
		return err
	}
	if err := writeKubeconfigs(p, cfg); err != nil {
		return err
	}
	// Made here, 0700 (a snapshot holds every Secret), or Docker would
	// make the snapshotter's 0755.
	for _, d := range []string{filepath.Join(cfg.Dir, "etcd"), cfg.SnapshotsDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	if _, err := host.Install(shim, shimPath(cfg.Dir)); err != nil {
		return err
	}
	emit(Event{Step: "pki", Message: fmt.Sprintf("certificates in %s (%d new)", cfg.PKIDir(), len(made)), Done: true})

	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 3 * time.Minute
	}
	upgrading := from != "" && from != rel.Kubernetes
	// The node's runtime and its images need nothing from the control
	// plane: they come up beside it, and kubelet starts once the apiserver
	// answers. In an upgrade, kubelet must not run newer than the
	// apiserver: the node comes after the control plane, as it did.
	apiserverUp := make(chan struct{})
	nodeCtx, stopNode := context.WithCancel(ctx)
	defer stopNode()
	var agents <-chan agentsStarted
	if node != nil && !upgrading {
		agents = goStartAgents(nodeCtx, engine, cfg, rel, node, apiserverUp, timeout, opts, emit)
	}
	err = startControlPlane(ctx, engine, cfg, rel, p, !cfg.HA && !upgrading, timeout, opts, emit, func(comp string) {
		if comp == "kube-apiserver" {
			close(apiserverUp)
		}
	})
	if err != nil {
		if agents != nil {
			stopNode()
			<-agents // nothing left running behind the error
		}
		return &UnfinishedError{Err: err, Command: "dk8s start", Waited: timeout}
	}
	if node != nil {
		if agents == nil {
			agents = goStartAgents(nodeCtx, engine, cfg, rel, node, apiserverUp, timeout, opts, emit)
		}
		if err := startNode(ctx, engine, cfg, rel, <-agents, upgrading, timeout, opts, emit); err != nil {
			return &UnfinishedError{Err: err, Command: "dk8s start", Waited: timeout}
		}
	}
	return finished()
}

// startControlPlane makes each control-plane container that is missing or
// whose spec changed, in order, and waits until each is healthy. Together,
// all are made at once and their health is waited for at once: the
// apiserver waits for etcd by itself, as the controller-manager and the
// scheduler wait for the apiserver, so a start that waited for each before
// making the next only added their waits up. Each one's Ready still runs,
// and its ✓ is still said, once it and every component before it are
// healthy, in the order of Components. A component that does not come up
// stops the wait of those after it, and its error (the first in order) is
// the start's. Not together (an upgrade, where nothing may run newer than
// the apiserver; a control plane of several, whose etcd member must be a
// voter before the apiserver uses it), each is made only once the one
// before it is healthy. ready hears each component once it is.
func startControlPlane(ctx context.Context, engine containers.Engine, cfg Config, rel *images.Release, p *pki.PKI, together bool, timeout time.Duration, opts StartOptions, emit func(Event), ready func(string)) error {
	comps := controlPlane()
	specs := make([]containers.Spec, len(comps))
	for i, c := range comps {
		spec, err := c.spec(cfg, rel)
		if err != nil {
			return err
		}
		if err := checkMounts(c, spec); err != nil {
			return err
		}
		specs[i] = spec
	}
	if together {
		// etcd and the apiserver first, then the rest once the apiserver
		// is ready: a controller-manager or scheduler that asks for its
		// leader lease before the apiserver has made its RBAC is refused,
		// and asks again only 2 to 4.4 s later, which held a new node's
		// pod range back by as much.
		split := slices.IndexFunc(comps, func(c Component) bool { return c.Name == "kube-apiserver" }) + 1
		if err := startTogether(ctx, engine, cfg, comps[:split], specs[:split], p, timeout, opts, emit, ready); err != nil {
			return err
		}
		return startTogether(ctx, engine, cfg, comps[split:], specs[split:], p, timeout, opts, emit, ready)
	}
	for i := range comps {
		if err := startTogether(ctx, engine, cfg, comps[i:i+1], specs[i:i+1], p, timeout, opts, emit, ready); err != nil {
			return err
		}
	}
	return nil
}

// startTogether makes comps' containers match specs, in order, then waits
// for them all at once, each one's Ready running after those of the ones
// before it (see startControlPlane).
func startTogether(ctx context.Context, engine containers.Engine, cfg Config, comps []Component, specs []containers.Spec, p *pki.PKI, timeout time.Duration, opts StartOptions, emit func(Event), ready func(string)) error {
	for i, c := range comps {
		if err := ensureComponent(ctx, engine, c, specs[i], emit); err != nil {
			return err
		}
	}
	n := len(comps)
	errs := make([]error, n)
	done := make([]chan struct{}, n)
	ctxs := make([]context.Context, n)
	cancels := make([]context.CancelFunc, n)
	for i := range comps {
		done[i] = make(chan struct{})
		ctxs[i], cancels[i] = context.WithCancel(ctx)
		defer cancels[i]()
	}
	var wg sync.WaitGroup
	for i, c := range comps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[i])
			err := waitComponent(ctxs[i], engine, c, specs[i].Name, p, timeout, opts)
			if err == nil && i > 0 {
				select {
				case <-done[i-1]:
					err = errs[i-1]
				case <-ctxs[i].Done():
					err = ctxs[i].Err()
				}
			}
			if err == nil && c.Ready != nil {
				err = c.Ready(ctxs[i], cfg, opts)
			}
			errs[i] = err
			if err != nil {
				// Never an earlier one's: its own error is the one to say.
				for _, cancel := range cancels[i+1:] {
					cancel()
				}
				return
			}
			emit(Event{Step: "healthy", Component: c.Name, Message: c.Name + " is healthy", Done: true})
			ready(c.Name)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// checkMounts refuses a spec whose flags name a file that is not there:
// Docker would otherwise make an empty directory in its place.
func checkMounts(c Component, spec containers.Spec) error {
	for _, m := range spec.Mounts {
		if _, err := os.Stat(m.Source); m.ReadOnly && errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: its flags name %s, which is not in the cluster directory (%s): put the file there, or drop the flag", c.Name, m.Target, m.Source)
		}
	}
	return nil
}

// ensureComponent makes c's container match spec, restarting one whose
// bound files changed.
func ensureComponent(ctx context.Context, engine containers.Engine, c Component, spec containers.Spec, emit func(Event)) error {
	ens, err := containers.Ensure(ctx, engine, spec)
	if err != nil {
		return fmt.Errorf("%s: %w", c.Name, err)
	}
	action := ens.String()
	if ens.Action == containers.Unchanged {
		if action, err = reloadFiles(ctx, engine, spec); err != nil {
			return fmt.Errorf("%s: %w", c.Name, err)
		}
	}
	emit(Event{Step: "container", Component: c.Name, Message: spec.Name + " " + action})
	return nil
}

// waitComponent waits, within timeout, until c answers its probe; one that
// does not comes back as a ComponentError with its last log lines and its
// hint.
func waitComponent(ctx context.Context, engine containers.Engine, c Component, name string, p *pki.PKI, timeout time.Duration, opts StartOptions) error {
	err := waitProbe(ctx, p, c.Name, timeout, opts)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return &ComponentError{Component: c.Name, Err: fmt.Errorf("not healthy: %w", err), Logs: lastLogs(engine, name, 15), Hint: c.Hint}
}

// reloadFiles restarts a running container when a file bound into it
// changed since it started (a certificate reissued or renewed): a bound
// file is the inode it was when the container started, so only a restart
// shows it the new one.
func reloadFiles(ctx context.Context, engine containers.Engine, spec containers.Spec) (string, error) {
	cur, err := engine.InspectContainer(ctx, spec.Name)
	if err != nil || cur.StartedAt.IsZero() {
		return "unchanged", err
	}
	for _, m := range spec.Mounts {
		st, err := os.Stat(m.Source)
		if err != nil || st.IsDir() || !st.ModTime().After(cur.StartedAt) {
			continue
		}
		if err := engine.StopContainer(ctx, spec.Name, 30*time.Second); err != nil {
			return "", err
		}
		return "restarted (" + filepath.Base(m.Source) + " changed)", engine.StartContainer(ctx, spec.Name)
	}
	return "unchanged", nil
}

func missingImages(ctx context.Context, engine containers.Engine, specs []containers.Spec) error {
	var missing []string
	for _, s := range specs {
		if _, err := engine.InspectImage(ctx, s.Image); containers.IsNotFound(err) {
			missing = append(missing, s.Image)
		} else if err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("images missing: %s; fetch them with 'dk8s pull --mirror MIRROR' (or start with --pull)", strings.Join(missing, ", "))
	}
	return nil
}

func lastLogs(engine containers.Engine, name string, lines int) string {
	var buf bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = engine.ContainerLogs(ctx, name, containers.LogsOptions{Tail: fmt.Sprint(lines)}, &buf, &buf)
	return strings.TrimRight(buf.String(), "\n")
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
