package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dk8s/dk8s/internal/wait"
	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/host"
	"github.com/dk8s/dk8s/pkg/pki"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// ComponentStatus is one line of `dk8s ps`.
type ComponentStatus struct {
	Component string `json:"component" yaml:"component"`
	// Supervisor is what keeps the component running: SupervisorDocker
	// (its Container, restart=always) or SupervisorSystemd (its Unit).
	Supervisor string        `json:"supervisor" yaml:"supervisor"`
	Container  string        `json:"container,omitempty" yaml:"container,omitempty"`
	Unit       string        `json:"unit,omitempty" yaml:"unit,omitempty"`
	Image      string        `json:"image,omitempty" yaml:"image,omitempty"`
	Version    string        `json:"version,omitempty" yaml:"version,omitempty"`
	State      string        `json:"state" yaml:"state"`
	Healthy    bool          `json:"healthy" yaml:"healthy"`
	Health     string        `json:"health" yaml:"health"`
	Restarts   int           `json:"restarts" yaml:"restarts"`
	Uptime     time.Duration `json:"-" yaml:"-"`
	// UptimeSeconds is Uptime for machines.
	UptimeSeconds int    `json:"uptimeSeconds" yaml:"uptimeSeconds"`
	Endpoint      string `json:"endpoint" yaml:"endpoint"`
}

// The supervisors of ComponentStatus.
const (
	SupervisorDocker  = "docker"
	SupervisorSystemd = "systemd"
)

// Status reports every component of the control plane, probing their
// health in parallel with a short timeout each.
func Status(ctx context.Context, engine containers.Engine, cfg Config) ([]ComponentStatus, error) {
	p := &pki.PKI{Dir: cfg.PKIDir()}
	var comps []Component
	kept, _ := ReadSettings(cfg.Dir)
	units := nodeUnits()
	// Where systemd is init, the node's agents are its units.
	byUnit := func(c Component) bool { return c.HostAgent && host.SystemdIsInit() && units.Installed(c.Name) }
	for _, c := range Components() {
		// A worker has no control plane; the node's rows show once it is a
		// node.
		if !c.HostAgent && kept.IsWorker() {
			continue
		}
		if _, err := own(ctx, engine, cfg, c.Name); err == nil || !c.HostAgent || byUnit(c) {
			comps = append(comps, c)
		}
	}
	out := make([]ComponentStatus, len(comps))
	var wg sync.WaitGroup
	for i, cp := range comps {
		comp := cp.Name
		st := ComponentStatus{Component: comp, Supervisor: SupervisorDocker, Container: containerName(comp), State: "absent", Health: "-", Endpoint: cp.Health.URL}
		running := false
		if c, err := own(ctx, engine, cfg, comp); err == nil {
			st.Image, st.State, st.Restarts = c.Image, c.State, c.RestartCount
			st.Version = c.Image[strings.LastIndex(c.Image, ":")+1:]
			if v := c.Labels[containers.LabelVersion]; v != "" {
				st.Image, st.Version = "host: "+comp, v // not the image it borrows
			}
			if cp.ImageOf != "" {
				st.Image, st.Version = "dk8s on "+c.Image, "-" // dk8s itself, bound in; the image's tag is not its version
			}
			if c.Running && !c.StartedAt.IsZero() {
				st.Uptime = time.Since(c.StartedAt)
			}
			running = c.Running
		} else if !containers.IsNotFound(err) {
			return nil, err
		} else if byUnit(cp) {
			us, err := units.State(ctx, comp)
			if err != nil {
				return nil, err
			}
			st.Supervisor, st.Container, st.Unit = SupervisorSystemd, "", host.UnitName(comp)
			st.Image, st.Version, st.State, st.Restarts, st.Uptime = "host: "+comp, us.Version, us.State(), us.Restarts, us.Uptime
			running = us.Running()
		}
		st.Uptime = st.Uptime.Round(time.Second)
		st.UptimeSeconds = int(st.Uptime.Seconds())
		out[i] = st
		if !running {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := Probe(ctx, p, comp, 2*time.Second); err != nil {
				out[i].Health = "unhealthy: " + err.Error()
			} else {
				out[i].Healthy, out[i].Health = true, "healthy"
			}
		}()
	}
	wg.Wait()
	// A node of a cluster of several control planes has its balancer.
	if c, err := own(ctx, engine, cfg, "apiserver-lb"); err == nil {
		st := ComponentStatus{Component: "apiserver-lb", Supervisor: SupervisorDocker, Container: lbContainer, Image: "dk8s on " + c.Image, Version: "-",
			State: c.State, Restarts: c.RestartCount, Health: "-", Endpoint: "tcp://" + LBAddress}
		if c.Running && !c.StartedAt.IsZero() {
			st.Uptime = time.Since(c.StartedAt).Round(time.Second)
			st.UptimeSeconds = int(st.Uptime.Seconds())
		}
		if c.Running {
			if conn, err := net.DialTimeout("tcp", LBAddress, 2*time.Second); err != nil {
				st.Health = "unhealthy: " + err.Error()
			} else {
				conn.Close()
				st.Healthy, st.Health = true, "healthy"
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// stopOrder is every component in the reverse of its start order: the
// node's agents, then the control plane.
func stopOrder() []string {
	var names []string
	for _, c := range reversed(Components()) {
		names = append(names, c.Name)
	}
	return names
}

// Stop stops the control plane's containers, in the reverse of their start
// order, keeping them, their data and the PKI. Docker's restart policy
// brings a stopped container back when the daemon itself restarts; `dk8s
// start` brings them back at once.
func Stop(ctx context.Context, engine containers.Engine, cfg Config) ([]string, error) {
	var stopped []string
	if units := nodeUnits(); units.Installed("kubelet") && host.SystemdIsInit() {
		for _, comp := range []string{"kubelet", "containerd"} {
			if err := host.Systemctl(ctx, units.Runner, "stop", host.UnitName(comp)); err != nil {
				return stopped, err
			}
			stopped = append(stopped, host.UnitName(comp))
		}
	}
	for _, comp := range append([]string{"apiserver-lb"}, stopOrder()...) {
		name := containerName(comp)
		_, err := own(ctx, engine, cfg, comp)
		if err == nil {
			err = engine.StopContainer(ctx, name, 30*time.Second)
		}
		if containers.IsNotFound(err) {
			continue
		}
		if err != nil {
			return stopped, fmt.Errorf("stopping %s: %w", name, err)
		}
		stopped = append(stopped, name)
	}
	return stopped, nil
}

// Reset removes the control plane's containers. The cluster directory (the
// etcd data, the PKI and the kubeconfigs) stays unless purge is set.
func Reset(ctx context.Context, engine containers.Engine, cfg Config, opts ResetOptions) ([]string, error) {
	purge := opts.Purge
	if err := checkOtherDir(ctx, engine, cfg); err != nil {
		return nil, err
	}
	// The ranges the clean-up looks for; a marker it cannot read is
	// refused below only when purging.
	_ = cfg.resolveKept()
	if purge {
		if err := CheckPurge(cfg); err != nil {
			return nil, err
		}
	}
	// The node's clean-up (units, pods, mounts under DIR/kubelet) is for
	// dk8s's own directory only: never a kubeadm host's /var/lib.
	if err := checkOwned(cfg); err != nil {
		return nil, err
	}
	if _, err := os.Stat(cfg.Dir); err == nil {
		// Not in the middle of a start on the same directory.
		unlock, err := lockDir(ctx, cfg.Dir, 0, func(Event) {})
		if err != nil {
			return nil, fmt.Errorf("%w: let it finish, then reset", err)
		}
		defer unlock()
	}
	cs, err := engine.ListContainers(ctx, map[string]string{containers.LabelCluster: cfg.ClusterName, containers.LabelDir: cfg.Dir})
	if err != nil {
		return nil, err
	}
	var removed []string
	// A worker leaves the cluster: its pods first if asked; its Node is
	// for a control plane to delete (see Notes).
	// A node agent left running would join the machine again at once.
	if c, err := engine.InspectContainer(ctx, AgentContainer); err == nil && c.Running {
		return nil, fmt.Errorf("the node agent (%s) runs on this machine and would join it again: remove it first with 'docker rm -f %s', then reset", AgentContainer, AgentContainer)
	}
	// A control plane of several leaves etcd's cluster first, while its
	// member still answers.
	if left, err := leaveEtcd(ctx, cfg, purge, opts.Force); err != nil {
		return nil, err
	} else if left != "" {
		removed = append(removed, left)
	}
	leaving := "" // a joined worker's node, which stays for a control plane to delete
	if kept, _ := ReadSettings(cfg.Dir); kept.IsWorker() {
		// Without kubelet.conf it never finished joining: nothing in the
		// cluster to take out.
		if _, err := os.Stat(filepath.Join(cfg.Dir, "kubelet.conf")); err == nil {
			leaving = kept.NodeName
		}
		if opts.Drain && leaving != "" {
			w, err := workerOf(cfg, leaving)
			if err != nil {
				return nil, err
			}
			if err := w.drain(ctx); err != nil {
				return nil, err
			}
			removed = append(removed, "the pods of node "+leaving)
		}
	}
	if units := nodeUnits(); units.Installed("containerd") && host.SystemdIsInit() {
		host.Systemctl(ctx, units.Runner, "stop", host.UnitName("kubelet"))
		// Pods outlive a stopped runtime: it is started to stop them.
		host.Systemctl(ctx, units.Runner, "start", host.UnitName("containerd"))
		stopPods(ctx)
		units.Remove(ctx, hostAgentNames())
		removed = append(removed, host.UnitName("kubelet"), host.UnitName("containerd"))
	}
	// Reverse start order, then anything else of the cluster.
	byName := map[string]bool{}
	for _, c := range cs {
		byName[c.Name] = true
	}
	var order []string
	for _, comp := range stopOrder() {
		if n := containerName(comp); byName[n] {
			order = append(order, n)
			delete(byName, n)
		}
	}
	for n := range byName {
		if n != lbContainer {
			order = append(order, n)
		}
	}
	// A worker's drain went through its balancer: it goes last.
	if byName[lbContainer] {
		order = append(order, lbContainer)
	}
	for _, name := range order {
		if name == containerName("containerd") {
			// Pods outlive a stopped runtime (dk8s stop): it is started
			// to stop them, or they would run on with nothing to manage them.
			if c, err := engine.InspectContainer(ctx, name); err == nil && !c.Running {
				engine.StartContainer(ctx, name)
			}
			stopPods(ctx)
		}
		if err := engine.StopContainer(ctx, name, 30*time.Second); err != nil && !containers.IsNotFound(err) {
			return removed, fmt.Errorf("stopping %s: %w", name, err)
		}
		if err := engine.RemoveContainer(ctx, name); err != nil && !containers.IsNotFound(err) {
			return removed, fmt.Errorf("removing %s: %w", name, err)
		}
		removed = append(removed, name)
	}
	if leaving != "" && opts.Notes != nil {
		opts.Notes(fmt.Sprintf("node %s stays in the cluster, NotReady: a node may not delete Node objects (nor could a token holder posing as it). "+
			"Remove it on a control plane: dk8s kubectl delete node %s", leaving, leaving))
	}
	if err := host.Cleanup(ctx, host.Exec{}, cfg.Dir, cfg.PodCIDR, purge); err != nil {
		return removed, err
	}
	if purge {
		if err := purgeDir(cfg.Dir); err != nil {
			return removed, fmt.Errorf("purging %s: %w", cfg.Dir, err)
		}
	}
	return removed, nil
}

// stopPods stops every pod through the runtime, once it answers.
func stopPods(ctx context.Context) {
	t, err := host.FindTools()
	if err != nil {
		return
	}
	if host.WaitRuntime(ctx, host.Exec{}, t.Ctr, 30*time.Second) == nil {
		host.StopPods(ctx, host.Exec{}, t.Ctr)
	}
}

// checkOwned refuses a reset for a directory that holds something but is
// not this cluster's: one that does not exist, is empty, or that dk8s made
// (marked, or by an older dk8s) is.
func checkOwned(cfg Config) error {
	if _, err := os.Lstat(cfg.Dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	s, err := ReadSettings(cfg.Dir)
	switch {
	case err == nil && s.Name == cfg.ClusterName:
		return nil
	case err == nil:
		return fmt.Errorf("%s holds the cluster %q, not %q: pass --name %s; nothing was changed", cfg.Dir, s.Name, cfg.ClusterName, s.Name)
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s: %w; nothing was changed", cfg.Dir, err)
	}
	if empty, _ := holdsNothingElse(cfg.Dir); empty || madeByDK8s(cfg.Dir) {
		return nil
	}
	return fmt.Errorf("%s is not a dk8s cluster directory (no %s in it); nothing was changed: pass the --dir the cluster was started with", cfg.Dir, MarkerFile)
}

// CheckPurge says whether `reset --purge` may delete cfg.Dir: only an
// absolute directory that dk8s marked as this cluster's when it made it (or
// one that no longer exists, when there is nothing to delete).
func CheckPurge(cfg Config) error {
	if !filepath.IsAbs(cfg.Dir) || filepath.Clean(cfg.Dir) != cfg.Dir || cfg.Dir == "/" {
		return fmt.Errorf("refusing to purge %q: the cluster directory must be an absolute, clean path other than /", cfg.Dir)
	}
	if _, err := os.Lstat(cfg.Dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	s, err := ReadSettings(cfg.Dir)
	if errors.Is(err, os.ErrNotExist) {
		if empty, _ := holdsNothingElse(cfg.Dir); empty {
			return nil // nothing in it can be lost
		}
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		why := "it holds no " + MarkerFile + ", so dk8s did not make it"
		if madeByDK8s(cfg.Dir) {
			why = "it was made by an older dk8s that did not mark its directories ('dk8s start' once marks it)"
		}
		return fmt.Errorf("refusing to purge %s: %s. Nothing was changed. If it holds nothing you need, delete it by hand: rm -rf %s", cfg.Dir, why, cfg.Dir)
	case err != nil:
		return fmt.Errorf("refusing to purge %s: %w. Nothing was changed", cfg.Dir, err)
	case s.Name != cfg.ClusterName:
		return fmt.Errorf("refusing to purge %s: it holds the cluster %q, not %q (pass --name %s). Nothing was changed", cfg.Dir, s.Name, cfg.ClusterName, s.Name)
	}
	return nil
}

// checkOtherDir refuses to act for cfg.Dir while this host's dk8s
// containers belong to a cluster kept in another directory: the node's
// network, runtime state and iptables chains are the host's, shared by
// whichever cluster runs.
func checkOtherDir(ctx context.Context, engine containers.Engine, cfg Config) error {
	for _, comp := range ComponentNames() {
		c, err := engine.InspectContainer(ctx, containerName(comp))
		if containers.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		if dir := c.Labels[containers.LabelDir]; dir != "" && dir != cfg.Dir {
			return fmt.Errorf("this host runs the cluster kept in %s (%s), not %s; nothing was changed: 'dk8s reset --dir %s' first, or delete %s by hand if it is a leftover",
				dir, c.Name, cfg.Dir, dir, cfg.Dir)
		}
	}
	return nil
}

// purgeDir deletes dir and everything in it; a dir that is itself a mount
// point (a dedicated disk for the cluster) is emptied and left in place.
func purgeDir(dir string) error {
	if _, err := os.Lstat(dir); os.IsNotExist(err) {
		return nil
	}
	// Never through a mount: what a bind or another disk below the
	// directory holds is not the cluster's.
	if err := host.RemoveContents(dir); err != nil {
		return err
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, syscall.EBUSY) {
		return err
	}
	return nil
}

// own returns component's container if it belongs to the control plane
// kept in cfg.Dir, an IsNotFound error if there is none, and an error
// naming the other directory if it belongs to another.
func own(ctx context.Context, engine containers.Engine, cfg Config, component string) (containers.Container, error) {
	c, err := engine.InspectContainer(ctx, containerName(component))
	if err != nil {
		return c, err
	}
	if dir := c.Labels[containers.LabelDir]; dir != cfg.Dir {
		return c, fmt.Errorf("%s belongs to the control plane kept in %s, not %s: pass --dir %s", c.Name, dir, cfg.Dir, dir)
	}
	return c, nil
}

// Logs writes component's container logs.
func Logs(ctx context.Context, engine containers.Engine, component string, opts containers.LogsOptions, stdout, stderr io.Writer) error {
	c, err := componentNamed(component)
	if err != nil {
		return err
	}
	name := containerName(c.Name)
	if _, err := engine.InspectContainer(ctx, name); containers.IsNotFound(err) {
		// Where systemd runs the node's agents, their logs are its journal's.
		if c.HostAgent && host.SystemdIsInit() && nodeUnits().Installed(c.Name) {
			return host.Journal(ctx, c.Name, opts.Tail, opts.Follow, stdout)
		}
		return fmt.Errorf("%s has no container: is the cluster started ('dk8s start')?", component)
	}
	return engine.ContainerLogs(ctx, name, opts, stdout, stderr)
}

// NodeStatus is one node of the cluster, as a control plane sees it.
type NodeStatus struct {
	Name    string `json:"name"`
	Ready   bool   `json:"ready"`
	Roles   string `json:"roles"`
	Version string `json:"version"`
	Address string `json:"address"`
}

// Nodes lists the cluster's nodes through cs (a control plane's admin).
func Nodes(ctx context.Context, cs kubernetes.Interface) ([]NodeStatus, error) {
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing the nodes: %w", err)
	}
	var out []NodeStatus
	for _, n := range list.Items {
		s := NodeStatus{Name: n.Name, Version: n.Status.NodeInfo.KubeletVersion, Roles: "worker"}
		if _, ok := n.Labels[ControlPlaneLabel]; ok {
			s.Roles = "control-plane"
		}
		s.Ready, _ = nodeReady(&n)
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				s.Address = a.Address
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// ResetOptions say how far a reset goes.
type ResetOptions struct {
	// Purge deletes the cluster directory too (see CheckPurge).
	Purge bool
	// Drain, on a worker, cordons its node, deletes its pods (not its
	// DaemonSets') and waits for them to go before the node leaves, so
	// their controllers make them again on other nodes at once rather than
	// after the node is gone.
	Drain bool
	// Force resets a control plane whose etcd member cannot leave its
	// cluster with a quorum kept (see leaveEtcd).
	Force bool
	// Notes hears what the reset leaves for the user to do; nil for
	// silence.
	Notes func(string)
}

// worker is a joined worker leaving its cluster, through its kubelet's
// own identity (a worker has no other): a node may cordon itself and
// delete the pods bound to it, not its Node object.
type worker struct {
	node string
	cs   kubernetes.Interface
}

func workerOf(cfg Config, node string) (*worker, error) {
	cs, err := clientFor(filepath.Join(cfg.Dir, "kubelet.conf"))
	if err != nil {
		return nil, err
	}
	return &worker{node: node, cs: cs}, nil
}

func (w *worker) drain(ctx context.Context) error {
	// Cordoned first, or the pods' controllers would place them here again.
	cordon := []byte(`{"spec":{"unschedulable":true}}`)
	if _, err := w.cs.CoreV1().Nodes().Patch(ctx, w.node, types.StrategicMergePatchType, cordon, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("cordoning node %s: %w", w.node, err)
	}
	onNode := func(ctx context.Context) ([]corev1.Pod, error) {
		list, err := w.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + w.node})
		if err != nil {
			return nil, fmt.Errorf("draining node %s: %w; reset without --drain leaves them to their controllers", w.node, err)
		}
		var out []corev1.Pod
		for _, p := range list.Items {
			if !daemonSetPod(&p) && p.Annotations[corev1.MirrorPodAnnotationKey] == "" {
				out = append(out, p)
			}
		}
		return out, nil
	}
	pods, err := onNode(ctx)
	if err != nil {
		return err
	}
	for _, p := range pods {
		if err := w.cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("draining node %s: deleting pod %s/%s: %w", w.node, p.Namespace, p.Name, err)
		}
	}
	// A node may list the pods bound to it, not get one that is gone.
	return wait.Until(ctx, time.Second, 2*time.Minute, func(ctx context.Context) (bool, string, error) {
		left, err := onNode(ctx)
		if err != nil {
			return false, err.Error(), nil
		}
		var names []string
		for _, p := range left {
			names = append(names, p.Namespace+"/"+p.Name)
		}
		return len(left) == 0, "pods still terminating: " + strings.Join(names, ", "), nil
	})
}

func daemonSetPod(p *corev1.Pod) bool {
	for _, o := range p.OwnerReferences {
		if o.Kind == "DaemonSet" {
			return true
		}
	}
	return false
}
