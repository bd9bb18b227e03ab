package bootstrap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/dk8s/dk8s/internal/atomicfile"
	"github.com/dk8s/dk8s/internal/wait"
	"github.com/dk8s/dk8s/pkg/addons"
	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/host"
	"github.com/dk8s/dk8s/pkg/images"
	"github.com/dk8s/dk8s/pkg/mirror"
	"github.com/dk8s/dk8s/pkg/pki"
)

// nodeUnits are the host agents' systemd units, used where systemd is init.
func nodeUnits() host.Units { return host.Units{Runner: host.Exec{}, Dir: host.UnitDir} }

// nodeTools are the host binaries a node runs, found by findNodeTools.
type nodeTools struct {
	host.Tools
	kubelet, kubeletVersion string   // the kubelet to install, and its version
	insecure                []string // registries Docker reaches over plain HTTP
}

// findNodeTools finds the runtime, the CNI plugins and a kubelet that fits
// the control plane (fetched through cfg's binary mirrors when the host has
// none, saying so through emit), or says what is missing. (The static dk8s
// the agents' supervisors run is findShim's.)
func findNodeTools(ctx context.Context, engine containers.Engine, cfg Config, rel *images.Release, emit func(Event)) (*nodeTools, error) {
	var t nodeTools
	v, err := engine.Version(ctx)
	if err != nil {
		return nil, err
	}
	t.insecure = v.Insecure
	if t.Tools, err = host.FindTools(); err != nil {
		return nil, err
	}
	if t.kubelet, t.kubeletVersion, err = host.FindKubelet(ctx, host.Exec{}, cfg.KubeletBinary, cfg.Dir, rel,
		&host.Fetcher{Mirrors: cfg.BinaryMirrors, Events: binaryEvents(emit)}); err != nil {
		return nil, err
	}
	return &t, nil
}

// findShim finds the static dk8s binary that dk8s's own containers run
// (the node's supervisors enter the host through it; the csr-approver is
// it): cfg.ShimBinary, or the running executable.
func findShim(cfg Config) (string, error) {
	shim := cfg.ShimBinary
	if shim == "" {
		var err error
		if shim, err = os.Executable(); err != nil {
			return "", err
		}
	}
	return shim, host.CheckStatic(shim)
}

// nodePlan is everything a node's start writes and supervises, planned
// once: the files the agents read, their command lines, and their
// supervisors (Docker containers, or systemd units where systemd is init).
type nodePlan struct {
	files                nodeFiles
	runtimeCmd, kubelet  []string
	runtime, kubeletSpec containers.Spec
	units                []host.Unit // where systemd is init
	dns                  string      // kube-dns's service address
	ctr                  string
}

// nodeIdentity says how a node's kubelet gets its client certificate:
// from dk8s on the host that holds the CA (a control plane), or by TLS
// bootstrap with a token (a joining machine), kubelet then writing
// kubelet.conf itself.
type nodeIdentity struct {
	bootstrapKubeconfig string // "" on a control plane
}

// planNode plans the node for tools installed under cfg.Dir/bin.
func planNode(ctx context.Context, cfg Config, rel *images.Release, t *nodeTools, shim, kubelet string, systemd bool, id nodeIdentity) (*nodePlan, error) {
	pause, _ := rel.Image("pause")
	svc, err := cfg.ServiceIP()
	if err != nil {
		return nil, err
	}
	dnsIP := append(net.IP(nil), svc.To4()...)
	dnsIP[3] = 10 // the service range's .10, where kubeadm puts kube-dns
	np := &nodePlan{dns: dnsIP.String(), ctr: t.Ctr}
	runtimeConf := filepath.Join(cfg.Dir, "containerd", "config.toml")
	kubeletConf := filepath.Join(cfg.Dir, "kubelet", "config.yaml")
	np.files = nodeFiles{
		runtimeConf: host.RuntimeConfig(cfg.Dir, pause.Name, t.CNIBin, systemd, len(containers.MissingCapabilities()) > 0),
		kubeletConf: host.KubeletConfig(cfg.AdvertiseAddress, np.dns, filepath.Join(cfg.PKIDir(), "ca.crt"), systemd, host.CgroupV1(), cfg.MaxPods),
	}
	if len(cfg.Mirrors) > 0 {
		// docker.io too: flannel's image is Docker Hub's, as are many of
		// users' images, and kubelet pulls through the runtime whatever
		// the runtime lacks.
		for _, registry := range []string{mirror.Upstream, mirror.DockerHub} {
			np.files[filepath.Join(cfg.Dir, "containerd", "certs.d", registry, "hosts.toml")] = host.HostsToml(registry, cfg.Mirrors, t.insecure)
		}
	}
	np.runtimeCmd = []string{t.Containerd, "--config", runtimeConf}
	np.kubelet = []string{kubelet, "--config=" + kubeletConf, "--kubeconfig=" + filepath.Join(cfg.Dir, "kubelet.conf"),
		"--root-dir=" + filepath.Join(cfg.Dir, "kubelet"), "--cert-dir=" + filepath.Join(cfg.Dir, "kubelet", "pki"),
		"--hostname-override=" + cfg.NodeName, "--node-ip=" + cfg.AdvertiseAddress.String()}
	if id.bootstrapKubeconfig != "" {
		np.kubelet = append(np.kubelet, "--bootstrap-kubeconfig="+id.bootstrapKubeconfig)
	}
	versions := map[string]string{"kubelet": t.kubeletVersion, "containerd": host.BinaryVersion(ctx, host.Exec{}, t.Containerd)}
	np.runtime = agentSpec(cfg, "containerd", pause.Name, shim, np.runtimeCmd, runtimePrep(cfg, t.Containerd, true), np.files.hash(filepath.Join(cfg.Dir, "containerd")), versions["containerd"])
	np.kubeletSpec = agentSpec(cfg, "kubelet", pause.Name, shim, np.kubelet, nil, np.files.hash(filepath.Join(cfg.Dir, "kubelet")), versions["kubelet"])
	np.units = []host.Unit{
		{Component: "containerd", Text: host.SystemdUnit("containerd", versions["containerd"], slices.Concat([]string{shim, "host-exec", "--root", "/"}, runtimePrep(cfg, t.Containerd, false), []string{"--"}, np.runtimeCmd), cfg.Profile.env(), []string{"docker.service"})},
		{Component: "kubelet", Text: host.SystemdUnit("kubelet", versions["kubelet"], np.kubelet, cfg.Profile.env(), []string{host.UnitName("containerd")})},
	}
	return np, nil
}

// nodeImages are the images every node's runtime holds before kubelet
// starts, so that no pod of dk8s's waits on a pull: the sandbox, the pod
// network, kube-proxy and CoreDNS.
var nodeImages = []string{"pause", "flannel", "kube-proxy", "coredns"}

// agentsStarted is what startAgents returns, from a goroutine.
type agentsStarted struct {
	plan     *nodePlan
	imageIDs map[string]string
	err      error
}

// goStartAgents runs startAgents for a control plane's own node beside the
// control plane's start; its one result comes on the channel.
func goStartAgents(ctx context.Context, engine containers.Engine, cfg Config, rel *images.Release, t *nodeTools, apiserverUp <-chan struct{}, timeout time.Duration, opts StartOptions, emit func(Event)) <-chan agentsStarted {
	out := make(chan agentsStarted, 1)
	go func() {
		np, ids, err := startAgents(ctx, engine, cfg, rel, t, nodeIdentity{}, apiserverUp, timeout, opts, emit)
		out <- agentsStarted{np, ids, err}
	}()
	return out
}

// startAgents installs this host's node agents and starts them: kubelet
// under cfg.Dir/bin (beside the dk8s its caller installed there), the
// runtime with the node's images in it, then, once apiserverUp is closed,
// kubelet, until kubelet answers its health check. It returns the plan and
// the IDs of the images it loaded.
func startAgents(ctx context.Context, engine containers.Engine, cfg Config, rel *images.Release, t *nodeTools, id nodeIdentity, apiserverUp <-chan struct{}, timeout time.Duration, opts StartOptions, emit func(Event)) (*nodePlan, map[string]string, error) {
	shim := shimPath(cfg.Dir) // installed by the caller, before any agent needs it
	kubelet, err := host.Install(t.kubelet, filepath.Join(cfg.Dir, "bin", "kubelet"))
	if err != nil {
		return nil, nil, err
	}
	systemd := host.SystemdIsInit()
	np, err := planNode(ctx, cfg, rel, t, shim, kubelet, systemd, id)
	if err != nil {
		return nil, nil, err
	}
	for path, content := range np.files {
		if _, err := atomicfile.WriteIfChanged(path, []byte(content), 0o644); err != nil {
			return nil, nil, err
		}
	}
	if err := host.EnsureSharedRoot(); err != nil {
		return nil, nil, err
	}
	if err := superviseRuntime(ctx, engine, np, systemd, emit); err != nil {
		return nil, nil, err
	}
	if err := host.WaitRuntime(ctx, host.Exec{}, np.ctr, timeout); err != nil {
		return nil, nil, agentError(engine, containerdAgent(), err, "")
	}
	var refs []string
	for _, c := range nodeImages {
		img, ok := rel.Image(c)
		if !ok {
			return nil, nil, fmt.Errorf("the lock's release %s names no %s image: use a lock that does (dk8s images)", rel.Kubernetes, c)
		}
		refs = append(refs, img.Name)
	}
	imageIDs, err := host.ImportImages(ctx, host.Exec{}, engine, np.ctr, filepath.Join(cfg.Dir, "containerd", "imported"), refs)
	if err != nil {
		return nil, nil, err
	}
	emit(Event{Step: "healthy", Component: "containerd", Message: "containerd (CRI) is up, with the pause, flannel, kube-proxy and CoreDNS images", Done: true})

	// kubelet registers the node with the apiserver, and would back off
	// for seconds while it is not there yet: it starts once it answers.
	select {
	case <-apiserverUp:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	if !systemd {
		ens, err := containers.Ensure(ctx, engine, np.kubeletSpec)
		if err != nil {
			return nil, nil, fmt.Errorf("kubelet: %w", err)
		}
		emit(Event{Step: "container", Component: "kubelet", Message: np.kubeletSpec.Name + " " + ens.String()})
	}
	if err := waitProbe(ctx, nil, "kubelet", timeout, opts); err != nil {
		return nil, nil, agentError(engine, kubeletAgent(), err, "")
	}
	return np, imageIDs, nil
}

// startNode makes this host a node of the control plane just started,
// once its agents have started (goStartAgents): the node labelled as a
// control plane, the add-ons, the pod network on this node, until the
// node is Ready and the add-ons have rolled out.
func startNode(ctx context.Context, engine containers.Engine, cfg Config, rel *images.Release, agents agentsStarted, upgrade bool, timeout time.Duration, opts StartOptions, emit func(Event)) error {
	if agents.err != nil {
		return agents.err
	}
	np, imageIDs := agents.plan, agents.imageIDs
	cs, err := opts.client(filepath.Join(cfg.Dir, "super-admin.conf"))
	if err != nil {
		return err
	}
	// kube-proxy and flanneld reach the apiservers through the node's
	// balancer where there are several; where there is one, the add-ons
	// are made while kubelet registers the node, so that their pods are
	// made as soon as it has.
	lb := cfg.HA && cfg.ControlPlaneEndpoint == ""
	if !lb {
		if err := ensureAddons(ctx, cs, cfg, rel, np.dns, imageIDs, upgrade); err != nil {
			return err
		}
	}
	if err := waitNodeRegistered(ctx, cs, cfg.NodeName, timeout); err != nil {
		return agentError(engine, kubeletAgent(), err, "")
	}
	if err := labelNode(ctx, cs, cfg.NodeName, map[string]string{ControlPlaneLabel: ""}); err != nil {
		return err
	}
	if lb {
		// It learns the other control planes from the cluster.
		if err := ensureLB(ctx, engine, cfg, rel, []string{apiServerAddr(cfg)}, filepath.Join(cfg.Dir, "kubelet.conf"), timeout, emit); err != nil {
			return err
		}
		if err := ensureAddons(ctx, cs, cfg, rel, np.dns, imageIDs, upgrade); err != nil {
			return err
		}
	}
	if _, err := ensureCNI(ctx, cfg.Dir, timeout); err != nil {
		return err
	}
	if err := waitNodeReady(ctx, cs, cfg.NodeName, timeout); err != nil {
		return agentError(engine, kubeletAgent(), err, "; 'kubectl describe node "+cfg.NodeName+"'")
	}
	emit(Event{Step: "healthy", Component: "kubelet", Message: "node " + cfg.NodeName + " is Ready", Done: true})
	if err := addons.Wait(ctx, cs, pollInterval, timeout); err != nil {
		return err
	}
	emit(Event{Step: "healthy", Component: "add-ons", Message: "flannel, kube-proxy and CoreDNS are running", Done: true})
	return nil
}

// superviseRuntime installs the runtime's supervisor: both agents' units
// where systemd is init (kubelet's unit waits for the runtime's), else the
// runtime's container.
func superviseRuntime(ctx context.Context, engine containers.Engine, np *nodePlan, systemd bool, emit func(Event)) error {
	if systemd {
		actions, err := nodeUnits().Apply(ctx, np.units)
		for _, a := range actions {
			emit(Event{Step: "unit", Message: a})
		}
		return err
	}
	ens, err := containers.Ensure(ctx, engine, np.runtime)
	if err != nil {
		return fmt.Errorf("containerd: %w", err)
	}
	emit(Event{Step: "container", Component: "containerd", Message: np.runtime.Name + " " + ens.String()})
	return nil
}

// agentError is a host agent that did not come up, with the last lines of
// its container's log or, under systemd, its unit's journal, and its hint.
func agentError(engine containers.Engine, c Component, err error, more string) error {
	logs := lastLogs(engine, containerName(c.Name), 15)
	if host.SystemdIsInit() && nodeUnits().Installed(c.Name) {
		var buf bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = host.Journal(ctx, c.Name, "15", false, &buf)
		logs = strings.TrimRight(buf.String(), "\n")
	}
	return &ComponentError{Component: c.Name, Err: err, Logs: logs, Hint: c.Hint + more}
}

// nodeFiles are the files dk8s writes for the node, by path.
type nodeFiles map[string]string

func (f nodeFiles) hash(prefix string) string {
	h := sha256.New()
	for _, p := range slices.Sorted(maps.Keys(f)) {
		if strings.HasPrefix(p, prefix) {
			fmt.Fprintf(h, "%s\n%s\n", p, f[p])
		}
	}
	return fmt.Sprintf("%x", h.Sum(nil))[:16]
}

// agentSpec is the container that supervises a host agent: in the host's
// namespaces, running the shim (with prep, host-exec's flags), which enters
// the host's mount namespace and execs the agent there. Its image only
// carries nothing: the pause image of the lock, present on every dk8s host.
// The shim is its only bind, private: no mount of the container depends on
// the host's root being shared, which a host without systemd makes it
// only once dk8s has run since its boot.
func agentSpec(cfg Config, comp, image, shim string, cmd, prep []string, configHash, version string) containers.Spec {
	entry := append([]string{shimTarget, "host-exec"}, prep...)
	return containers.Spec{
		Name:       containerName(comp),
		Image:      image,
		Entrypoint: append(entry, "--"),
		Args:       cmd,
		Env:        cfg.Profile.env(),
		Labels: map[string]string{
			containers.LabelComponent:  comp,
			containers.LabelCluster:    cfg.ClusterName,
			containers.LabelDir:        cfg.Dir,
			containers.LabelConfigHash: configHash,
			containers.LabelVersion:    version,
		},
		Mounts: []containers.Mount{{Source: shim, Target: shimTarget, ReadOnly: true}},
		// Root: host-exec enters the host's root and runs the agent there,
		// and upstream's pause image declares USER 65535:65535.
		User:           "0:0",
		HostNetwork:    true,
		HostNamespaces: true,
		Privileged:     true,
		RestartAlways:  true, // as for the control plane: see Component.spec
	}.WithHash()
}

// runtimePrep are host-exec's flags for the runtime (the binary at
// containerd), under either supervisor: the service range kept on the host
// before any pod can send to it; with cgroup (Docker's container), the
// runtime in a cgroup of its own, so that pods outlive a crash or restart of
// its container (under systemd, KillMode=process and Delegate=yes do that);
// and its own directory first on its PATH, where its shim and runc are.
func runtimePrep(cfg Config, containerd string, cgroup bool) []string {
	flags := []string{"--service-cidr", cfg.ServiceCIDR}
	if cgroup {
		flags = append(flags, "--cgroup", host.RuntimeCgroup)
	}
	return append(flags, "--path-first", filepath.Dir(containerd))
}

// pollInterval is how often a start asks whether what it waits for is
// there: each step waits on the one before, so each poll's half-interval
// of lag adds up along a start; one small request at a time is cheap.
const pollInterval = 250 * time.Millisecond

// waitProbe waits until component answers its probe.
func waitProbe(ctx context.Context, p *pki.PKI, component string, timeout time.Duration, opts StartOptions) error {
	return wait.Until(ctx, pollInterval, timeout, func(ctx context.Context) (bool, string, error) {
		if err := opts.probe(ctx, p, component); err != nil {
			return false, err.Error(), nil
		}
		return true, "", nil
	})
}

// ControlPlaneLabel marks a control plane's node, as kubeadm labels it:
// 'kubectl get nodes' shows it under ROLES.
const ControlPlaneLabel = "node-role.kubernetes.io/control-plane"

// labelNode sets labels on node (a merge patch: other labels are kept).
func labelNode(ctx context.Context, cs kubeClient, node string, labels map[string]string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
	if err != nil {
		return err
	}
	if _, err := cs.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("labelling node %s: %w", node, err)
	}
	return nil
}

// waitNodeRegistered waits until kubelet has registered the node.
func waitNodeRegistered(ctx context.Context, cs kubeClient, node string, timeout time.Duration) error {
	err := wait.Until(ctx, pollInterval, timeout, func(ctx context.Context) (bool, string, error) {
		if _, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{}); err != nil {
			return false, "not registered: " + err.Error(), nil
		}
		return true, "", nil
	})
	if err != nil {
		return fmt.Errorf("node %s did not register: %w", node, err)
	}
	return nil
}

// nodeReady tells whether n reports Ready, and else why not.
func nodeReady(n *corev1.Node) (bool, string) {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue, c.Reason + ": " + c.Message
		}
	}
	return false, "no Ready condition yet"
}

// waitNodeReady waits until the node reports Ready.
func waitNodeReady(ctx context.Context, cs kubeClient, node string, timeout time.Duration) error {
	err := wait.Until(ctx, pollInterval, timeout, func(ctx context.Context) (bool, string, error) {
		n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return false, "not registered", nil
		}
		ready, why := nodeReady(n)
		return ready, why, nil
	})
	if err != nil {
		return fmt.Errorf("node %s not Ready: %w", node, err)
	}
	return nil
}
