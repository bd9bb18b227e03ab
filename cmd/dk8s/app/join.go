package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/dk8s/dk8s/pkg/bootstrap"
	"github.com/dk8s/dk8s/pkg/images"
	"github.com/dk8s/dk8s/pkg/mirror"
	"github.com/dk8s/dk8s/pkg/token"
)

type joinFlags struct {
	clusterFlags
	token, nodeName, advertise string
	hashes                     []string
	kubeletBinary, mirrors     string
	binaryMirrors              string
	timeout, wait, discovery   time.Duration
	maxPods                    int
	controlPlane               bool
	certificateKey             string
	profile                    string
}

func newJoin(g *globals) *cobra.Command {
	f := &joinFlags{}
	cmd := &cobra.Command{
		Use:   "join https://HOST:6443 --token TOKEN --ca-cert-hash sha256:HASH",
		Short: "Make this machine a worker, or another control plane, of a dk8s cluster",
		Long: `Make this machine a worker node of the cluster whose apiserver is at
https://HOST:6443, with a bootstrap token and the hash of the cluster CA's
public key, both printed by 'dk8s token create --print-join-command' on a
control plane.

The cluster CA is found through the token-signed cluster-info and checked
against the hash before anything is trusted or written. The node's images
(pause, flannel, kube-proxy, CoreDNS) of the release the cluster runs come
through --mirror and are verified against images.lock, as 'dk8s pull' does.
Then dk8s's containerd and a kubelet run on this host, supervised by Docker
(or systemd where it is init) as on the first machine; kubelet gets its own
certificate by TLS bootstrap, and the token is not kept.

A wrong token, hash or server is refused before this host is changed. A
rerun on a joined machine needs no token: it puts back what is missing.

With --control-plane and --certificate-key (both printed by 'dk8s token
create --control-plane --print-join-command'), this machine becomes another
control plane instead: it opens the cluster's CAs and service-account keys
with the key, makes its own certificates, adds its etcd to the cluster's as
a learner (promoted once it has caught up), and runs its apiserver,
controller-manager and scheduler beside the others', and its node. After
that, 'dk8s start' brings it back like any control plane.

Without --kubelet-binary or a kubelet on the PATH, the lock's kubelet comes
into DIR/bin through the binary mirrors, checked against its sha256.

` + binaryMirrorHelp(),
		Example: `  dk8s join https://192.0.2.10:6443 --token abcdef.0123456789abcdef \
      --ca-cert-hash sha256:1f0e...9a --mirror aliyun,daocloud
  dk8s ps                       # this machine's parts
  dk8s reset                    # take it out again`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("give the control plane's apiserver, e.g. 'dk8s join https://192.0.2.10:6443 --token ... --ca-cert-hash sha256:...'")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return runJoin(cmd, g, f, args[0]) },
	}
	f.addJoin(cmd)
	cmd.Flags().DurationVar(&f.wait, "wait", 0, "how long to wait for another dk8s on the same --dir to finish")
	cmd.Flags().BoolVar(&f.controlPlane, "control-plane", false, "join as another control plane (etcd member, apiserver, controller-manager, scheduler), with --certificate-key")
	// Secrets' defaults come from the environment when the command runs,
	// never into --help's text.
	cmd.Flags().StringVar(&f.certificateKey, "certificate-key", "", "`KEY` that opens the cluster's certificates, printed by 'dk8s token create --control-plane'; or $DK8S_CERTIFICATE_KEY, kept off the command line other users of the host can read")
	return cmd
}

// addJoin adds the flags a join takes, on the command and on the agent.
func (f *joinFlags) addJoin(cmd *cobra.Command) {
	f.add(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.token, "token", "", "bootstrap `TOKEN` (ID.SECRET) from 'dk8s token create'; or $DK8S_TOKEN, kept off the command line other users of the host can read")
	fl.StringArrayVar(&f.hashes, "ca-cert-hash", nil, "`sha256:HASH` of the cluster CA's public key (repeatable)")
	fl.StringVar(&f.nodeName, "node-name", "", "this node's `NAME` (default: the host name)")
	fl.StringVar(&f.advertise, "advertise-address", "", "`IP` of this node (default: the default route's)")
	fl.StringVar(&f.mirrors, "mirror", envOr("DK8S_MIRROR", "upstream"), "mirrors to pull the node's images through, in order; or auto, auto:LIST (see 'dk8s pull --help')")
	fl.StringVar(&f.kubeletBinary, "kubelet-binary", "", "kubelet `FILE` on the host to run (default: kubelet on the PATH, else downloaded and checked against images.lock)")
	addBinaryMirrorFlag(fl, &f.binaryMirrors)
	fl.DurationVar(&f.timeout, "timeout", 3*time.Minute, "how long each step of a join may take")
	fl.IntVar(&f.maxPods, "max-pods", 0, "most pods this node runs (default: kubelet's 110)")
	fl.DurationVar(&f.discovery, "discovery-timeout", 20*time.Second, "how long to wait for the control plane to answer and sign a new token")
	addProfileFlag(fl, &f.profile)
}

// joinConfig checks join's input and turns it into the library's.
func (f *joinFlags) joinConfig(cmd *cobra.Command, server string) (bootstrap.JoinConfig, mirror.Choice, error) {
	if f.token == "" {
		f.token = os.Getenv("DK8S_TOKEN")
	}
	if f.certificateKey == "" {
		f.certificateKey = os.Getenv("DK8S_CERTIFICATE_KEY")
	}
	// Checked before anything else (a joined host's rerun needs none).
	if f.token != "" {
		if _, err := token.Parse(f.token); err != nil {
			return bootstrap.JoinConfig{}, mirror.Choice{}, err
		}
	}
	cfg, err := f.config()
	if err != nil {
		return bootstrap.JoinConfig{}, mirror.Choice{}, err
	}
	cfg.NodeName, cfg.KubeletBinary, cfg.Node, cfg.MaxPods = f.nodeName, f.kubeletBinary, true, f.maxPods
	if f.maxPods < 0 {
		return bootstrap.JoinConfig{}, mirror.Choice{}, fmt.Errorf("--max-pods %d: give a positive number, or leave it out for kubelet's 110", f.maxPods)
	}
	if f.advertise != "" {
		if cfg.AdvertiseAddress = net.ParseIP(f.advertise); cfg.AdvertiseAddress == nil {
			return bootstrap.JoinConfig{}, mirror.Choice{}, fmt.Errorf("--advertise-address %q is not an IP address", f.advertise)
		}
		cfg.AdvertiseGiven = true
	}
	if cfg.Profile, err = profileOf(cmd, f.profile); err != nil {
		return bootstrap.JoinConfig{}, mirror.Choice{}, err
	}
	choice, err := mirror.ParseChoice(f.mirrors)
	if err != nil {
		return bootstrap.JoinConfig{}, mirror.Choice{}, err
	}
	// For auto, the candidates until runJoin ranks them for the cluster's
	// release.
	if cmd.Flags().Changed("mirror") || os.Getenv("DK8S_MIRROR") != "" {
		cfg.Mirrors = choice.Mirrors
	}
	if cfg.BinaryMirrors, err = binaryMirrors(f.binaryMirrors, choice.Mirrors); err != nil {
		return bootstrap.JoinConfig{}, mirror.Choice{}, err
	}
	return bootstrap.JoinConfig{Config: cfg, Server: server, Token: f.token, CACertHashes: f.hashes, DiscoveryTimeout: f.discovery}, choice, nil
}

func runJoin(cmd *cobra.Command, g *globals, f *joinFlags, server string) error {
	jc, choice, err := f.joinConfig(cmd, server)
	if err != nil {
		return err
	}
	if f.certificateKey != "" && !f.controlPlane {
		return errors.New("--certificate-key is for a control plane: add --control-plane, or leave the key out to join a worker")
	}
	if f.controlPlane && f.certificateKey == "" {
		return errors.New("--control-plane needs --certificate-key: 'dk8s token create --control-plane --print-join-command' on a control plane prints the whole command")
	}
	ctx := cmd.Context()
	lock, err := g.readLock()
	if err != nil {
		return err
	}
	engine, err := g.engine(ctx)
	if err != nil {
		return err
	}
	defer engine.Close()
	mirrors := choice.Mirrors
	opts := bootstrap.JoinOptions{
		StartOptions: bootstrap.StartOptions{Timeout: f.timeout, LockWait: f.wait, Events: startEvents(g)},
		Pull: func(ctx context.Context, rel *images.Release, components []string) error {
			_, err := pullShown(ctx, g, engine, rel.Only(components...), images.PullOptions{Mirrors: mirrors})
			var pe *images.PullError
			if errors.As(err, &pe) {
				return errors.New(describeFailures(pe))
			}
			return err
		},
	}
	if choice.Auto {
		opts.Mirrors = func(ctx context.Context, rel *images.Release) ([]mirror.Mirror, error) {
			var err error
			mirrors, err = chooseMirrors(ctx, g, choice, rel)
			return mirrors, err
		}
	}
	start := time.Now()
	if f.controlPlane {
		fmt.Fprintf(g.streams.Err, "Joining %s as a control plane\n", server)
		err = bootstrap.JoinControlPlane(ctx, engine, bootstrap.ControlPlaneJoinConfig{JoinConfig: jc, CertificateKey: f.certificateKey}, lock, opts)
	} else {
		fmt.Fprintf(g.streams.Err, "Joining %s as a worker\n", server)
		err = bootstrap.Join(ctx, engine, jc, lock, opts)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(g.streams.Err, "This machine joined in %s. On a control plane:\n  kubectl get nodes\n", time.Since(start).Round(100*time.Millisecond))
	return nil
}
