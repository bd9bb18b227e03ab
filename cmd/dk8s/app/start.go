package app

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dk8s/dk8s/pkg/addons"
	"github.com/dk8s/dk8s/pkg/bootstrap"
	"github.com/dk8s/dk8s/pkg/images"
	"github.com/dk8s/dk8s/pkg/mirror"
)

type startFlags struct {
	clusterFlags
	nodeName, advertise, serviceCIDR, podCIDR string
	extraArgs                                 []string
	configFile                                string
	kubeletBinary                             string
	controlPlaneOnly                          bool
	ha                                        bool
	endpoint                                  string
	pull                                      bool
	mirrors, binaryMirrors                    string
	timeout, wait                             time.Duration
	snapshotInterval                          time.Duration
	snapshotRetention                         int
	profile                                   string
	proxyMode                                 string
}

func newStart(g *globals) *cobra.Command {
	f := &startFlags{}
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Run a single-node cluster as Docker-supervised containers",
		Long: `Run etcd, kube-apiserver, kube-controller-manager and kube-scheduler as
host-network containers with restart=always, so that the Docker daemon keeps
them running through crashes and reboots; no dk8s process stays behind.

Then make this host the cluster's node: dk8s's own containerd (CRI on, the
lock's pause image as sandbox image) and kubelet run on the host, each
supervised by Docker through a container in the host's namespaces, with
flannel (VXLAN) as the pod network, kube-proxy and CoreDNS from the lock's
images. Pods' registry.k8s.io and docker.io images come through --mirror.
--control-plane-only skips this. Other machines join with 'dk8s token create
--print-join-command'.

dk8s makes the cluster's PKI and kubeconfigs in --dir (default /var/lib/dk8s),
beside etcd's data; a rerun keeps them, recreates nothing that has not
changed, and replaces exactly the containers whose image or flags changed.
Nothing is changed until the host checks pass.

Without --kubelet-binary or a kubelet on the PATH, the lock's kubelet comes
into DIR/bin through the binary mirrors, checked against its sha256.

` + binaryMirrorHelp(),
		Example: `  dk8s start
  dk8s start --pull --mirror aliyun,daocloud
  dk8s start --profile small        # a 1 to 2 GB machine: less memory, more CPU
  dk8s start --proxy-mode nftables  # kube-proxy on nftables (v1.40's default) rather than iptables
  dk8s start --extra-args kube-apiserver:v=4 --extra-args etcd:quota-backend-bytes=4294967296
  kubectl --kubeconfig /var/lib/dk8s/admin.conf get namespaces`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runStart(cmd, g, f) },
	}
	f.add(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.nodeName, "node-name", "", "this node's `NAME` (default: the host name)")
	fl.StringVar(&f.advertise, "advertise-address", "", "`IP` the apiserver advertises (default: the default route's)")
	fl.StringVar(&f.serviceCIDR, "service-cidr", bootstrap.DefaultServiceCIDR, "service address `RANGE` (kept on the host: never routed out)")
	fl.StringVar(&f.podCIDR, "pod-cidr", bootstrap.DefaultPodCIDR, "pod address `RANGE`")
	fl.StringArrayVar(&f.extraArgs, "extra-args", nil, "add or override a component flag: `COMPONENT:FLAG=VALUE` (repeatable)")
	fl.StringVar(&f.configFile, "config", "", "YAML `FILE` with nodeName, advertiseAddress, serviceCIDR, podCIDR and extraArgs (per component, flag: value); flags win over it")
	fl.BoolVar(&f.pull, "pull", false, "pull missing images first (see 'dk8s pull')")
	fl.StringVar(&f.mirrors, "mirror", envOr("DK8S_MIRROR", "upstream"), "mirrors for --pull, and for pods' registry.k8s.io and docker.io images, in order; or auto, auto:LIST (see 'dk8s pull --help')")
	fl.StringVar(&f.kubeletBinary, "kubelet-binary", "", "kubelet `FILE` to run (default: kubelet on the PATH, else downloaded and checked against images.lock)")
	addBinaryMirrorFlag(fl, &f.binaryMirrors)
	fl.BoolVar(&f.controlPlaneOnly, "control-plane-only", false, "run the control plane only: no pod runtime, kubelet or add-ons on this host")
	fl.StringVar(&f.endpoint, "control-plane-endpoint", "", "`HOST[:PORT]` of your own balancer or VIP in front of every control plane (keepalived+haproxy, kube-vip): certificates name it and workers use it (implies --ha; default port 6443)")
	fl.BoolVar(&f.ha, "ha", false, "take more control planes ('dk8s token create --control-plane'): etcd also answers at the advertise address, with mutual TLS; kept once set")
	fl.DurationVar(&f.timeout, "timeout", 3*time.Minute, "how long each component may take to become healthy")
	fl.DurationVar(&f.snapshotInterval, "etcd-snapshot-interval", bootstrap.DefaultSnapshotInterval, "how often the etcd-snapshotter saves a snapshot into DIR/snapshots (0: never); kept for later starts")
	fl.IntVar(&f.snapshotRetention, "etcd-snapshot-retention", bootstrap.DefaultSnapshotRetention, "how many scheduled snapshots to keep (those saved by hand are never deleted); kept for later starts")
	fl.DurationVar(&f.wait, "wait", 0, "how long to wait for another start on the same --dir to finish (default: refuse at once)")
	addProfileFlag(fl, &f.profile)
	fl.StringVar(&f.proxyMode, "proxy-mode", "", "kube-proxy's mode for the whole cluster: "+strings.Join(addons.ProxyModes, " or ")+" (default: iptables, as kubeadm; a cluster keeps its mode until a start names another)")
	return cmd
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func runStart(cmd *cobra.Command, g *globals, f *startFlags) error {
	cfg, choice, err := f.startConfig(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	rel, engine, err := g.releaseAndEngine(ctx)
	if err != nil {
		return err
	}
	defer engine.Close()
	mirrors := choice.Mirrors
	if choice.Auto {
		if mirrors, err = chooseMirrors(ctx, g, choice, rel); err != nil {
			return err
		}
		cfg.Mirrors = mirrors
	}
	if f.pull {
		if _, err := pullShown(ctx, g, engine, rel, images.PullOptions{Mirrors: mirrors}); err != nil {
			return err
		}
	}
	fmt.Fprintf(g.streams.Err, "Starting Kubernetes %s control plane %q in %s\n", rel.Kubernetes, cfg.ClusterName, cfg.Dir)
	start := time.Now()
	err = bootstrap.Start(ctx, engine, cfg, rel, bootstrap.StartOptions{
		Timeout:  f.timeout,
		LockWait: f.wait,
		Events:   startEvents(g),
	})
	if err != nil {
		return err
	}
	what := "Single-node cluster"
	if f.controlPlaneOnly {
		what = "Control plane"
	}
	env := ""
	if cfg.Dir != bootstrap.DefaultDir {
		env = "DK8S_DIR=" + cfg.Dir + " "
	}
	fmt.Fprintf(g.streams.Err, "%s ready in %s. Talk to it with:\n  %sdk8s kubectl get nodes\nor any kubectl:\n  kubectl --kubeconfig %s get nodes\n",
		what, time.Since(start).Round(100*time.Millisecond), env, cfg.AdminKubeconfig())
	return nil
}

// startConfig is the cluster start's flags name, over what --config's file
// says, and the mirrors --pull pulls through (for auto, the candidates,
// ranked once the release is known). It checks all of start's input, so
// that nothing is done before a mistake in it is found.
func (f *startFlags) startConfig(cmd *cobra.Command) (bootstrap.Config, mirror.Choice, error) {
	var none mirror.Choice
	cfg, err := f.config()
	if err != nil {
		return cfg, none, err
	}
	if f.configFile != "" {
		if err := bootstrap.LoadStartConfig(f.configFile, &cfg); err != nil {
			return cfg, none, err
		}
	}
	if f.nodeName != "" {
		cfg.NodeName = f.nodeName
	}
	if f.advertise != "" {
		if cfg.AdvertiseAddress = net.ParseIP(f.advertise); cfg.AdvertiseAddress == nil {
			return cfg, none, fmt.Errorf("--advertise-address %q is not an IP address", f.advertise)
		}
	}
	cfg.AdvertiseGiven = cfg.AdvertiseAddress != nil
	// Unset ranges come from the cluster's marker on a rerun, else the
	// defaults (bootstrap.Config.Resolve).
	if cmd.Flags().Changed("service-cidr") {
		cfg.ServiceCIDR = f.serviceCIDR
	}
	if cmd.Flags().Changed("pod-cidr") {
		cfg.PodCIDR = f.podCIDR
	}
	// Unset, the schedule is the cluster's (its marker), else the default.
	if cmd.Flags().Changed("etcd-snapshot-interval") {
		if f.snapshotInterval < 0 {
			return cfg, none, fmt.Errorf("--etcd-snapshot-interval %s is negative: pass how often to snapshot, or 0 for never", f.snapshotInterval)
		}
		cfg.SnapshotInterval = &f.snapshotInterval
	}
	if cmd.Flags().Changed("etcd-snapshot-retention") {
		if f.snapshotRetention < 1 {
			return cfg, none, fmt.Errorf("--etcd-snapshot-retention %d: keep at least 1 (--etcd-snapshot-interval 0 turns the snapshots off)", f.snapshotRetention)
		}
		cfg.SnapshotRetention = f.snapshotRetention
	}
	cfg.Node, cfg.KubeletBinary, cfg.HA = !f.controlPlaneOnly, f.kubeletBinary, f.ha
	if cfg.Profile, err = profileOf(cmd, f.profile); err != nil {
		return cfg, none, err
	}
	if err := addons.CheckProxyMode(f.proxyMode); err != nil {
		return cfg, none, err
	}
	cfg.ProxyMode = f.proxyMode
	if f.endpoint != "" {
		ep, err := parseEndpoint(f.endpoint)
		if err != nil {
			return cfg, none, err
		}
		cfg.ControlPlaneEndpoint, cfg.HA = ep, true
	}
	choice, err := mirror.ParseChoice(f.mirrors)
	if err != nil {
		return cfg, none, err
	}
	// Pods' images go through the mirrors only when the user named them;
	// by default the runtime pulls from each image's registry itself.
	if cmd.Flags().Changed("mirror") || os.Getenv("DK8S_MIRROR") != "" {
		cfg.Mirrors = choice.Mirrors
	}
	if cfg.BinaryMirrors, err = binaryMirrors(f.binaryMirrors, choice.Mirrors); err != nil {
		return cfg, none, err
	}
	extra, err := parseExtraArgs(f.extraArgs)
	if err != nil {
		return cfg, none, err
	}
	for comp, flags := range extra {
		if cfg.ExtraArgs == nil {
			cfg.ExtraArgs = map[string]map[string]string{}
		}
		if cfg.ExtraArgs[comp] == nil {
			cfg.ExtraArgs[comp] = map[string]string{}
		}
		for k, v := range flags {
			cfg.ExtraArgs[comp][k] = v
		}
	}
	return cfg, choice, nil
}

// startEvents renders Start's progress on stderr: ✓ for a step done, ! for
// a warning, in color on a terminal.
func startEvents(g *globals) func(bootstrap.Event) {
	tty := isTerminal(g.streams.Err)
	return func(e bootstrap.Event) {
		switch {
		case e.Warning:
			fmt.Fprintln(g.streams.Err, color(tty, "33", "! ")+e.Message)
		case e.Done:
			fmt.Fprintln(g.streams.Err, color(tty, "32", "✓ ")+e.Message)
		default:
			fmt.Fprintln(g.streams.Err, "  "+e.Message)
		}
	}
}

func parseExtraArgs(list []string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for _, item := range list {
		comp, kv, ok := strings.Cut(item, ":")
		k, v, ok2 := strings.Cut(kv, "=")
		k = strings.TrimPrefix(k, "--")
		if !ok || !ok2 || comp == "" || k == "" {
			return nil, fmt.Errorf("--extra-args %q must be COMPONENT:FLAG=VALUE, e.g. kube-apiserver:v=4", item)
		}
		if out[comp] == nil {
			out[comp] = map[string]string{}
		}
		out[comp][k] = v
	}
	return out, nil
}

// parseEndpoint checks --control-plane-endpoint: a host (name or IP) and
// an optional port, 6443 when left out.
func parseEndpoint(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = s, "6443"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" || strings.ContainsAny(host, "/ ") {
		return "", fmt.Errorf("--control-plane-endpoint %q: give HOST or HOST:PORT, such as 192.0.2.100:6443 or k8s.example.com", s)
	}
	return net.JoinHostPort(host, port), nil
}
