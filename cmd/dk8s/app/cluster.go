package app

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/dk8s/dk8s/pkg/bootstrap"
	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/host"
	"github.com/dk8s/dk8s/pkg/images"
	"github.com/dk8s/dk8s/pkg/mirror"
)

// clusterFlags name the cluster every cluster command works on.
type clusterFlags struct {
	dir  string
	name string
}

func (c *clusterFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.dir, "dir", bootstrap.DefaultDir, "host `DIR` that holds the cluster's PKI, kubeconfigs and etcd data")
	cmd.Flags().StringVar(&c.name, "name", "dk8s", "cluster `NAME`, put on every container as a label")
}

// connect returns the cluster's configuration and a Docker client.
func (c *clusterFlags) connect(cmd *cobra.Command, g *globals) (bootstrap.Config, *containers.Docker, error) {
	cfg, err := c.config()
	if err != nil {
		return cfg, nil, err
	}
	engine, err := g.engine(cmd.Context())
	return cfg, engine, err
}

// config is the cluster the flags name. It looks nothing up on the host:
// commands that need the node name or the address resolve them
// (bootstrap.Config.Resolve), so a host without a default route can still
// run ps, stop and reset.
func (c *clusterFlags) config() (bootstrap.Config, error) {
	cfg := bootstrap.DefaultConfig()
	dir, err := bootstrap.AbsDir(c.dir)
	if err != nil {
		return cfg, err
	}
	cfg.Dir, cfg.ClusterName = dir, c.name
	return cfg, nil
}

type startFlags struct {
	clusterFlags
	nodeName, advertise, serviceCIDR, podCIDR string
	extraArgs                                 []string
	configFile                                string
	kubeletBinary                             string
	controlPlaneOnly                          bool
	pull                                      bool
	mirrors                                   string
	timeout, wait                             time.Duration
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
supervised by Docker through a container in the host's namespaces, with a
bridge CNI network, kube-proxy and CoreDNS from the lock's images. Pods'
registry.k8s.io images come through --mirror. --control-plane-only skips this.

dk8s makes the cluster's PKI and kubeconfigs in --dir (default /var/lib/dk8s),
beside etcd's data; a rerun keeps them, recreates nothing that has not
changed, and replaces exactly the containers whose image or flags changed.
Nothing is changed until the host checks pass.`,
		Example: `  dk8s start
  dk8s start --pull --mirror aliyun,daocloud
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
	fl.StringVar(&f.mirrors, "mirror", envOr("DK8S_MIRROR", "upstream"), "mirrors for --pull, and for pods' registry.k8s.io images, in order")
	fl.StringVar(&f.kubeletBinary, "kubelet-binary", "", "kubelet `FILE` to run (default: kubelet on the PATH, else downloaded and checked against images.lock)")
	fl.BoolVar(&f.controlPlaneOnly, "control-plane-only", false, "run the control plane only: no pod runtime, kubelet or add-ons on this host")
	fl.DurationVar(&f.timeout, "timeout", 3*time.Minute, "how long each component may take to become healthy")
	fl.DurationVar(&f.wait, "wait", 0, "how long to wait for another start on the same --dir to finish (default: refuse at once)")
	return cmd
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func runStart(cmd *cobra.Command, g *globals, f *startFlags) error {
	cfg, err := f.config()
	if err != nil {
		return err
	}
	if f.configFile != "" {
		if err := readStartConfig(f.configFile, &cfg); err != nil {
			return err
		}
	}
	if f.nodeName != "" {
		cfg.NodeName = f.nodeName
	}
	if f.advertise != "" {
		if cfg.AdvertiseAddress = net.ParseIP(f.advertise); cfg.AdvertiseAddress == nil {
			return fmt.Errorf("--advertise-address %q is not an IP address", f.advertise)
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
	cfg.Node, cfg.KubeletBinary = !f.controlPlaneOnly, f.kubeletBinary
	if cmd.Flags().Changed("mirror") || os.Getenv("DK8S_MIRROR") != "" {
		if cfg.Mirrors, err = mirror.ParseList(f.mirrors); err != nil {
			return err
		}
	}
	extra, err := parseExtraArgs(f.extraArgs)
	if err != nil {
		return err
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
	_, rel, err := g.release()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	engine, err := g.engine(ctx)
	if err != nil {
		return err
	}
	defer engine.Close()
	if f.pull {
		mirrors, err := mirror.ParseList(f.mirrors)
		if err != nil {
			return err
		}
		if _, err := pullShown(ctx, g, engine, rel, images.PullOptions{Mirrors: mirrors}); err != nil {
			return err
		}
	}
	tty := isTerminal(g.streams.Err)
	fmt.Fprintf(g.streams.Err, "Starting Kubernetes %s control plane %q in %s\n", rel.Kubernetes, cfg.ClusterName, cfg.Dir)
	start := time.Now()
	err = bootstrap.Start(ctx, engine, cfg, rel, bootstrap.StartOptions{
		Timeout:  f.timeout,
		LockWait: f.wait,
		Events: func(e bootstrap.Event) {
			switch {
			case e.Warning:
				fmt.Fprintln(g.streams.Err, color(tty, "33", "! ")+e.Message)
			case e.Done:
				fmt.Fprintln(g.streams.Err, color(tty, "32", "✓ ")+e.Message)
			default:
				fmt.Fprintln(g.streams.Err, "  "+e.Message)
			}
		},
	})
	if err != nil {
		return err
	}
	what := "Single-node cluster"
	if f.controlPlaneOnly {
		what = "Control plane"
	}
	fmt.Fprintf(g.streams.Err, "%s ready in %s. Talk to it with:\n  kubectl --kubeconfig %s get nodes\n",
		what, time.Since(start).Round(100*time.Millisecond), cfg.AdminKubeconfig())
	return nil
}

// startConfig is the file form of start's flags.
type startConfig struct {
	NodeName         string                       `yaml:"nodeName"`
	AdvertiseAddress string                       `yaml:"advertiseAddress"`
	ServiceCIDR      string                       `yaml:"serviceCIDR"`
	PodCIDR          string                       `yaml:"podCIDR"`
	ExtraArgs        map[string]map[string]string `yaml:"extraArgs"`
}

func readStartConfig(path string, cfg *bootstrap.Config) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	dec := yaml.NewDecoder(fh)
	dec.KnownFields(true)
	var sc startConfig
	if err := dec.Decode(&sc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if sc.NodeName != "" {
		cfg.NodeName = sc.NodeName
	}
	if sc.AdvertiseAddress != "" {
		if cfg.AdvertiseAddress = net.ParseIP(sc.AdvertiseAddress); cfg.AdvertiseAddress == nil {
			return fmt.Errorf("%s: advertiseAddress %q is not an IP address", path, sc.AdvertiseAddress)
		}
	}
	if sc.ServiceCIDR != "" {
		cfg.ServiceCIDR = sc.ServiceCIDR
	}
	if sc.PodCIDR != "" {
		cfg.PodCIDR = sc.PodCIDR
	}
	cfg.ExtraArgs = sc.ExtraArgs
	return nil
}

func newHostExec() *cobra.Command {
	opts := host.ExecOptions{}
	cmd := &cobra.Command{
		Use:    "host-exec [--service-cidr RANGE] [--cgroup NAME] -- COMMAND [ARG...]",
		Short:  "Enter the host's root at /host and run COMMAND there (run by dk8s's node containers)",
		Hidden: true,
		Args:   cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return host.ExecOnHost(cmd.Context(), host.Exec{}, opts, args)
		},
	}
	cmd.Flags().StringVar(&opts.Root, "root", host.MountedRoot, "the host's root file system")
	cmd.Flags().StringVar(&opts.ServiceCIDR, "service-cidr", "", "route this range to the host's service device first")
	cmd.Flags().StringVar(&opts.Cgroup, "cgroup", "", "move into this cgroup first")
	return cmd
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

func newPs(g *globals) *cobra.Command {
	f := &clusterFlags{}
	var output string
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "Show every component: state, health, restarts, version, uptime",
		Long: `Show every component of the control plane with its live health. Exits
non-zero when any component is absent or unhealthy, so monitoring can run it.`,
		Example: "  dk8s ps\n  dk8s ps -o json | jq '.[] | select(.healthy | not)'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, "table", "json", "yaml"); err != nil {
				return err
			}
			cfg, engine, err := f.connect(cmd, g)
			if err != nil {
				return err
			}
			defer engine.Close()
			sts, err := bootstrap.Status(cmd.Context(), engine, cfg)
			if err != nil {
				return err
			}
			switch output {
			case "json":
				err = writeJSON(g.streams.Out, sts)
			case "yaml":
				err = yaml.NewEncoder(g.streams.Out).Encode(sts)
			default:
				var rows [][]string
				for _, s := range sts {
					uptime := "-"
					if s.Uptime > 0 {
						uptime = s.Uptime.String()
					}
					health := s.Health
					if !s.Healthy && s.State == "running" {
						health = "unhealthy"
					}
					rows = append(rows, []string{s.Component, s.Container, s.State, health, fmt.Sprint(s.Restarts), orDash(s.Version), uptime, s.Endpoint})
				}
				err = table(g.streams.Out, []string{"COMPONENT", "CONTAINER", "STATE", "HEALTH", "RESTARTS", "VERSION", "UPTIME", "ENDPOINT"}, rows)
			}
			if err != nil {
				return err
			}
			for _, s := range sts {
				if !s.Healthy {
					return ExitError{Code: 1}
				}
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newStop(g *globals) *cobra.Command {
	f := &clusterFlags{}
	cmd := &cobra.Command{
		Use:   "stop",
		Short: "Stop the cluster (kubelet and runtime first), keeping its containers, data and PKI",
		Long: `Stop the control plane's containers, newest first. Everything is kept:
'dk8s start' brings them back. As with any restart=always container, a
restart of the Docker daemon starts them again too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, engine, err := f.connect(cmd, g)
			if err != nil {
				return err
			}
			defer engine.Close()
			stopped, err := bootstrap.Stop(cmd.Context(), engine, cfg)
			for _, n := range stopped {
				fmt.Fprintln(g.streams.Err, "stopped", n)
			}
			return err
		},
	}
	f.add(cmd)
	return cmd
}

func newReset(g *globals) *cobra.Command {
	f := &clusterFlags{}
	var purge, yes bool
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Remove the cluster's containers and pods; keep etcd data and PKI unless --purge",
		Long: `Remove the control plane's containers. The cluster directory (etcd's data,
the PKI, the kubeconfigs) stays, so 'dk8s start' brings the same cluster
back. --purge also deletes that directory, and with it every object the
cluster held: it asks first, or takes --yes.`,
		Example: "  dk8s reset\n  dk8s reset --purge --yes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			if purge {
				// Refused before anything is asked or removed.
				if err := bootstrap.CheckPurge(cfg); err != nil {
					return err
				}
			}
			if purge && !yes {
				ok, err := confirm(g, fmt.Sprintf("This deletes %s: the cluster's etcd data (every object), its PKI and kubeconfigs. Type 'yes' to go on: ", cfg.Dir))
				if err != nil {
					return err
				}
				if !ok {
					return errors.New("not purged: nothing was changed")
				}
			}
			engine, err := g.engine(cmd.Context())
			if err != nil {
				return err
			}
			defer engine.Close()
			removed, err := bootstrap.Reset(cmd.Context(), engine, cfg, purge)
			for _, n := range removed {
				fmt.Fprintln(g.streams.Err, "removed", n)
			}
			if err == nil && purge {
				fmt.Fprintln(g.streams.Err, "purged", cfg.Dir)
			} else if err == nil {
				fmt.Fprintf(g.streams.Err, "kept %s (etcd data, PKI, kubeconfigs): 'dk8s start' brings the cluster back\n", cfg.Dir)
			}
			return err
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&purge, "purge", false, "also delete the cluster directory: etcd data, PKI, kubeconfigs")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask before --purge")
	return cmd
}

func confirm(g *globals, prompt string) (bool, error) {
	if g.streams.In == nil {
		return false, errors.New("--purge asks for confirmation: pass --yes to run without a terminal")
	}
	fmt.Fprint(g.streams.Err, prompt)
	line, err := bufio.NewReader(g.streams.In).ReadString('\n')
	if err != nil && line == "" {
		return false, errors.New("--purge needs a 'yes' on standard input, or --yes")
	}
	return strings.TrimSpace(line) == "yes", nil
}

func newLogs(g *globals) *cobra.Command {
	f := &clusterFlags{}
	var follow bool
	var tail string
	cmd := &cobra.Command{
		Use:       "logs COMPONENT",
		Short:     "Print a component's logs",
		Example:   "  dk8s logs kube-apiserver --tail 50\n  dk8s logs etcd -f",
		Args:      cobra.ExactArgs(1),
		ValidArgs: bootstrap.ComponentNames(),
		RunE: func(cmd *cobra.Command, args []string) error {
			engine, err := g.engine(cmd.Context())
			if err != nil {
				return err
			}
			defer engine.Close()
			return bootstrap.Logs(cmd.Context(), engine, args[0], containers.LogsOptions{Follow: follow, Tail: tail}, g.streams.Out, g.streams.Out)
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines")
	cmd.Flags().StringVar(&tail, "tail", "all", "lines from the end to show")
	return cmd
}

func newKubeconfig(g *globals) *cobra.Command {
	f := &clusterFlags{}
	var merge bool
	cmd := &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print the cluster admin's kubeconfig, or merge it into ~/.kube/config",
		Long: `Print the cluster admin's kubeconfig (it holds a private key: keep it 0600).
With --merge, add its cluster, user and context to your kubeconfig
($KUBECONFIG's first file, else ~/.kube/config) and make it the current
context; entries of other clusters are kept.`,
		Example: "  dk8s kubeconfig --merge && kubectl get namespaces\n  KUBECONFIG=/var/lib/dk8s/admin.conf kubectl get namespaces",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			path := cfg.AdminKubeconfig()
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%s does not exist: start the cluster first ('dk8s start')", path)
			}
			if !merge {
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				_, err = g.streams.Out.Write(data)
				return err
			}
			target, err := mergeKubeconfig(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.streams.Err, "merged %s into %s; current context is now %s's admin\n", path, target, cfg.ClusterName)
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&merge, "merge", false, "merge into your kubeconfig instead of printing")
	return cmd
}

// mergeKubeconfig adds admin's entries to the user's kubeconfig and makes
// its context current, keeping every other entry.
func mergeKubeconfig(admin string) (string, error) {
	src, err := clientcmd.LoadFromFile(admin)
	if err != nil {
		return "", err
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	target := rules.GetDefaultFilename()
	dst, err := clientcmd.LoadFromFile(target)
	if errors.Is(err, os.ErrNotExist) {
		dst, err = clientcmdapi.NewConfig(), nil
	}
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", target, err)
	}
	for k, v := range src.Clusters {
		dst.Clusters[k] = v
	}
	for k, v := range src.AuthInfos {
		dst.AuthInfos[k] = v
	}
	for k, v := range src.Contexts {
		dst.Contexts[k] = v
	}
	dst.CurrentContext = src.CurrentContext
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return "", err
	}
	if err := clientcmd.WriteToFile(*dst, target); err != nil {
		return "", err
	}
	// It now holds the admin's private key: readable by its owner only,
	// whatever mode the file had.
	return target, os.Chmod(target, 0o600)
}

func newCerts(g *globals) *cobra.Command {
	f := &clusterFlags{}
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Show when each certificate of the cluster expires",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			exp, err := bootstrap.CertExpiries(cfg)
			if err != nil {
				return fmt.Errorf("reading the PKI in %s: %w (start the cluster first)", cfg.PKIDir(), err)
			}
			var rows [][]string
			for _, e := range exp {
				left := time.Until(e.NotAfter).Round(time.Hour)
				rows = append(rows, []string{e.Name, e.NotAfter.Format(time.RFC3339), fmt.Sprintf("%dd", int(left.Hours()/24)), yesNo(e.CA)})
			}
			return table(g.streams.Out, []string{"CERTIFICATE", "EXPIRES", "LEFT", "CA"}, rows)
		},
	}
	f.add(cmd)
	renew := &cobra.Command{
		Use:   "renew",
		Short: "Renew every certificate but the CAs, keeping keys; restart the control plane to load them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := certsOf(f)
			if err != nil {
				return err
			}
			renewed, err := bootstrap.RenewCerts(cfg, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(g.streams.Err, "renewed %d certificates for another year; restart the components to load them: 'dk8s stop && dk8s start'\n", len(renewed))
			return nil
		},
	}
	f.add(renew)
	cmd.AddCommand(renew)
	return cmd
}

// certsOf is the cluster whose certificates are renewed, with what they
// must name: the settings the cluster was made with, kept in its
// directory, not today's host name and route.
func certsOf(f *clusterFlags) (bootstrap.Config, error) {
	cfg, err := f.config()
	if err != nil {
		return cfg, err
	}
	return cfg, cfg.Resolve()
}
