package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/dk8s/dk8s/internal/atomicfile"
	"github.com/dk8s/dk8s/internal/wait"
	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/host"
	"github.com/dk8s/dk8s/pkg/images"
	"github.com/dk8s/dk8s/pkg/mirror"
	"github.com/dk8s/dk8s/pkg/token"
)

// JoinConfig is what a machine joining a cluster as a worker is given.
type JoinConfig struct {
	// Config holds this host's side: Dir, NodeName, AdvertiseAddress,
	// KubeletBinary, ShimBinary and Mirrors. The cluster's ranges come
	// from the cluster.
	Config
	// Server is a control plane's apiserver, https://HOST:6443.
	Server string
	// Token is a bootstrap token, ID.SECRET ('dk8s token create').
	Token string
	// CACertHashes pin the cluster CA's public key (sha256:HEX); one must
	// match.
	CACertHashes []string
	// DiscoveryTimeout bounds the wait for the control plane to answer and
	// for a new token's signature; 0 means 20s.
	DiscoveryTimeout time.Duration
}

// JoinOptions tune Join.
type JoinOptions struct {
	StartOptions
	// Pull brings the named components' images of rel into Docker's store,
	// through the mirrors and verified, as 'dk8s pull' does. nil means the
	// images must be there already.
	Pull func(ctx context.Context, rel *images.Release, components []string) error
	// Mirrors, when set, chooses this node's mirrors (Config.Mirrors, for
	// its pods and Pull) once the cluster's release is known: dk8s's
	// --mirror auto ranks mirrors by the tags of that release.
	Mirrors func(ctx context.Context, rel *images.Release) ([]mirror.Mirror, error)
}

// chooseMirrors sets cfg's mirrors for rel, where opts choose them.
func (o JoinOptions) chooseMirrors(ctx context.Context, rel *images.Release, cfg *Config) error {
	if o.Mirrors == nil {
		return nil
	}
	ms, err := o.Mirrors(ctx, rel)
	if err != nil {
		return err
	}
	cfg.Mirrors = ms
	return nil
}

// clusterSettingsName is the ConfigMap in kube-system that tells a joining
// machine the cluster's ranges (its kube-dns address and pod range follow
// from them); bootstrap tokens and nodes may read it.
const clusterSettingsName = "dk8s-cluster"

// Join makes this host a worker of the cluster at jc.Server: it finds the
// cluster CA through the token-signed cluster-info and checks it against
// the pin, learns the cluster's version and ranges, pulls the node's images
// of that release, and starts the runtime and a kubelet that gets its
// identity by TLS bootstrap, until the node is Ready. Every check that can
// fail on bad input (the token, the pin, the server) runs before anything
// is written. A rerun on a joined host (the agent does one every so often)
// needs no token: it converges the host to its plan.
func Join(ctx context.Context, engine containers.Engine, jc JoinConfig, lock *images.Lock, opts JoinOptions) error {
	emit := func(e Event) {
		if opts.Events != nil {
			opts.Events(e)
		}
	}
	server, err := parseServer(jc.Server)
	if err != nil {
		return err
	}
	jc.Server = server
	dir, err := AbsDir(jc.Dir)
	if err != nil {
		return err
	}
	jc.Dir = dir
	kubeletConf := filepath.Join(jc.Dir, "kubelet.conf")
	kept, err := ReadSettings(jc.Dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	joined := false
	switch {
	case kept == nil:
		if _, err := os.Stat(jc.Dir); err == nil {
			if empty, err := holdsNothingElse(jc.Dir); err != nil || !empty {
				return fmt.Errorf("%s is not empty and was not made by dk8s (no %s in it): choose a new or empty --dir", jc.Dir, MarkerFile)
			}
		}
	case !kept.IsWorker():
		return fmt.Errorf("this host is a control plane of the cluster %q (%s): a host is one node; run 'dk8s reset' first to make it a worker of another cluster, or use another --dir", kept.Name, jc.Dir)
	case kept.Server != server:
		return fmt.Errorf("this host is already a worker of %s: run 'dk8s reset' first to join %s", kept.Server, server)
	default:
		_, statErr := os.Stat(kubeletConf)
		joined = statErr == nil
	}
	if err := jc.Config.Resolve(); err != nil {
		return err
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 3 * time.Minute
	}

	// Who the cluster is: through the token the first time, through the
	// node's own identity once joined (the token may have expired since).
	var caPEM []byte
	var cs kubeClient
	if joined {
		if caPEM, err = os.ReadFile(filepath.Join(jc.PKIDir(), "ca.crt")); err != nil {
			return err
		}
		if cs, err = opts.client(kubeletConf); err != nil {
			return err
		}
	} else {
		if caPEM, cs, err = discoverCluster(ctx, jc, emit); err != nil {
			return err
		}
	}
	rel, err := joinRelease(ctx, cs, lock)
	if err != nil {
		return err
	}
	if err := opts.chooseMirrors(ctx, rel, &jc.Config); err != nil {
		return err
	}
	apiServers, err := clusterRanges(ctx, cs, &jc.Config)
	if err != nil {
		return err
	}
	if len(apiServers) == 0 {
		u, _ := url.Parse(server)
		apiServers = []string{u.Host}
	}
	if !joined {
		if err := nameFree(ctx, cs, jc.NodeName); err != nil {
			return err
		}
	}
	shim, err := findShim(jc.Config)
	if err != nil {
		return err
	}
	tools, err := findNodeTools(ctx, engine, jc.Config, rel, emit)
	if err != nil {
		return err
	}
	if err := joinPreflight(ctx, engine, jc.Config, opts.listening, emit); err != nil {
		return err
	}
	emit(Event{Step: "preflight", Message: fmt.Sprintf("host checks passed; the cluster runs Kubernetes %s", rel.Kubernetes), Done: true})
	if opts.Pull != nil {
		if err := opts.Pull(ctx, rel, nodeImages); err != nil {
			return err
		}
	}

	// From here on the host changes.
	if err := os.MkdirAll(jc.PKIDir(), 0o700); err != nil {
		return err
	}
	unlock, err := lockDir(ctx, jc.Dir, opts.LockWait, emit)
	if err != nil {
		return err
	}
	defer unlock()
	settings := Settings{Name: jc.ClusterName, NodeName: jc.NodeName, ServiceCIDR: jc.ServiceCIDR, PodCIDR: jc.PodCIDR, Role: RoleWorker, Server: server, KubernetesVersion: rel.Kubernetes, HA: jc.HA}
	if jc.Profile != ProfileDefault {
		settings.Profile = string(jc.Profile)
	}
	if jc.AdvertiseGiven {
		settings.AdvertiseAddress = jc.AdvertiseAddress.String()
	}
	if err := writeSettings(jc.Dir, settings); err != nil {
		return err
	}
	if _, err := atomicfile.WriteIfChanged(filepath.Join(jc.PKIDir(), "ca.crt"), caPEM, 0o644); err != nil {
		return err
	}
	// kubelet's command line names the bootstrap kubeconfig on every run,
	// so that a rerun does not replace it; the file exists only until
	// kubelet has its own identity, which it then uses.
	id := nodeIdentity{bootstrapKubeconfig: filepath.Join(jc.Dir, "bootstrap-kubelet.conf")}
	// With several control planes, kubelet reaches them through the
	// node's balancer, from its first request on.
	kubeletServer := server
	if jc.HA {
		kubeletServer = lbURL()
	} else if jc.ControlPlaneEndpoint != "" {
		kubeletServer = jc.ClusterURL()
	}
	if !joined {
		if err := writeBootstrapKubeconfig(id.bootstrapKubeconfig, kubeletServer, caPEM, jc.Token); err != nil {
			return err
		}
	}
	if _, err := host.Install(shim, shimPath(jc.Dir)); err != nil {
		return err
	}
	if jc.HA {
		if err := ensureLB(ctx, engine, jc.Config, rel, apiServers, kubeletConf, timeout, emit); err != nil {
			return err
		}
	}
	// The apiserver answered the join already: kubelet need not wait for it.
	apiserverUp := make(chan struct{})
	close(apiserverUp)
	if _, _, err := startAgents(ctx, engine, jc.Config, rel, tools, id, apiserverUp, timeout, opts.StartOptions, emit); err != nil {
		return err
	}
	// kubelet writes kubelet.conf once the controller-manager has signed
	// its client certificate.
	err = wait.Until(ctx, time.Second, timeout, func(context.Context) (bool, string, error) {
		if _, err := os.Stat(kubeletConf); err != nil {
			return false, "kubelet has no client certificate yet (its request is approved by the controller-manager)", nil
		}
		return true, "", nil
	})
	if err != nil {
		return agentError(engine, kubeletAgent(), fmt.Errorf("TLS bootstrap: %w", err), "; 'kubectl get csr' on a control plane")
	}
	emit(Event{Step: "healthy", Component: "kubelet", Message: "kubelet has its own identity (TLS bootstrap)", Done: true})
	// The token was for this once: it is not kept on the host.
	os.Remove(id.bootstrapKubeconfig)
	ncs, err := opts.client(kubeletConf)
	if err != nil {
		return err
	}
	if err := waitNodeRegistered(ctx, ncs, jc.NodeName, timeout); err != nil {
		return agentError(engine, kubeletAgent(), err, "")
	}
	if _, err := ensureCNI(ctx, jc.Dir, timeout); err != nil {
		return err
	}
	if err := waitNodeReady(ctx, ncs, jc.NodeName, timeout); err != nil {
		return agentError(engine, kubeletAgent(), err, "; 'kubectl describe node "+jc.NodeName+"' on a control plane")
	}
	emit(Event{Step: "healthy", Component: "kubelet", Message: "node " + jc.NodeName + " is Ready", Done: true})
	return nil
}

// discoverCluster finds the cluster CA at jc.Server through the token-signed
// cluster-info, checks it against the pinned hashes, and returns it with a
// client that authenticates with the token.
func discoverCluster(ctx context.Context, jc JoinConfig, emit func(Event)) ([]byte, kubernetes.Interface, error) {
	server := jc.Server
	tok, err := token.Parse(jc.Token)
	if err != nil {
		return nil, nil, err
	}
	if len(jc.CACertHashes) == 0 {
		return nil, nil, errors.New("--ca-cert-hash is required: it is how this machine knows the cluster is the one you meant; 'dk8s token create --print-join-command' on a control plane prints it")
	}
	var pins []string
	for _, h := range jc.CACertHashes {
		p, err := token.ParseHash(h)
		if err != nil {
			return nil, nil, err
		}
		pins = append(pins, p)
	}
	emit(Event{Step: "discovery", Message: "finding the cluster CA at " + server})
	// A control plane still starting, or a token made a moment ago that
	// the controller-manager has not signed yet, is waited for a little;
	// any other answer is final at once.
	discoveryWait := jc.DiscoveryTimeout
	if discoveryWait == 0 {
		discoveryWait = 20 * time.Second
	}
	var caPEM []byte
	var last, final error // the last answer worth waiting out; one that is not
	// Each attempt has its own bound (token.Discover's per request), so
	// a slow answer is still an answer; the wait bounds the retries.
	err = wait.Until(ctx, time.Second, discoveryWait, func(context.Context) (bool, string, error) {
		var derr error
		caPEM, derr = token.Discover(ctx, server, tok, pins)
		if errors.Is(derr, token.ErrUnreachable) || errors.Is(derr, token.ErrNoSignature) {
			last = derr
			return false, derr.Error(), nil
		}
		final = derr
		return true, "", nil
	})
	if final != nil {
		return nil, nil, final
	}
	if err != nil && ctx.Err() == nil {
		if last != nil {
			return nil, nil, last
		}
		return nil, nil, fmt.Errorf("%w at %s: no answer within %s: check the address and port (the apiserver listens on 6443), that the control plane is up ('dk8s ps' on it), and that no firewall between the two hosts drops the port (--discovery-timeout waits longer)", token.ErrUnreachable, server, discoveryWait)
	}
	if err != nil {
		return nil, nil, err
	}
	emit(Event{Step: "discovery", Message: "cluster CA found and matches the pinned hash", Done: true})
	bootstrap := &rest.Config{Host: server, BearerToken: tok.String(), TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}, Timeout: 15 * time.Second}
	cs, err := kubernetes.NewForConfig(bootstrap)
	if err != nil {
		return nil, nil, err
	}
	return caPEM, cs, nil
}

// parseServer checks a --server: https, a host and a port.
func parseServer(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" || (u.Path != "" && u.Path != "/") {
		return "", fmt.Errorf("server %q: give a control plane's apiserver as https://HOST:6443", s)
	}
	port := u.Port()
	if port == "" {
		port = "6443"
	}
	return "https://" + net.JoinHostPort(u.Hostname(), port), nil
}

// joinRelease is the lock's release of the version the cluster runs.
func joinRelease(ctx context.Context, cs kubernetes.Interface, lock *images.Lock) (*images.Release, error) {
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		return nil, fmt.Errorf("asking the apiserver its version: %w", err)
	}
	rel, err := lock.Release(v.GitVersion)
	if err != nil {
		return nil, fmt.Errorf("the cluster runs Kubernetes %s, which this lock does not hold: %w; use the lock the control plane was started with (--lock)", v.GitVersion, err)
	}
	return rel, nil
}

// clusterRanges fills cfg's ranges, name and whether it has several
// control planes from the cluster's settings, and returns their
// apiservers (HOST:PORT) where it has.
func clusterRanges(ctx context.Context, cs kubernetes.Interface, cfg *Config) ([]string, error) {
	cm, err := cs.CoreV1().ConfigMaps(addonNS).Get(ctx, clusterSettingsName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading the cluster's settings (%s/%s): %w; is the control plane a dk8s one of this version?", addonNS, clusterSettingsName, err)
	}
	cfg.ServiceCIDR, cfg.PodCIDR = cm.Data["serviceCIDR"], cm.Data["podCIDR"]
	if name := cm.Data["clusterName"]; name != "" {
		cfg.ClusterName = name
	}
	if _, err := cfg.ServiceIP(); err != nil {
		return nil, err
	}
	cfg.HA = cm.Data[settingHA] == "true"
	if e := cm.Data[settingEndpoint]; e != "" {
		// The user's endpoint balances the control planes: no balancer
		// of the node's own.
		cfg.ControlPlaneEndpoint, cfg.HA = e, false
	}
	var servers []string
	for _, s := range strings.Split(cm.Data[settingAPIServers], ",") {
		if s != "" {
			servers = append(servers, s)
		}
	}
	return servers, nil
}

// nameFree refuses a node name that a Ready node holds: two machines under
// one name would take turns at being the node.
func nameFree(ctx context.Context, cs kubernetes.Interface, name string) error {
	n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking that no node is named %s yet: %w", name, err)
	}
	if ready, _ := nodeReady(n); ready {
		return fmt.Errorf("a node named %s is already in the cluster and Ready: give this machine another name (--node-name), or remove that node first ('kubectl delete node %s')", name, name)
	}
	return nil
}

// joinPreflight checks the host for a node: root, Docker, kubelet's and
// kube-proxy's ports free (unless dk8s's own agents hold them), the service
// range free, no swap.
func joinPreflight(ctx context.Context, engine containers.Engine, cfg Config, listening func() map[int]string, emit func(Event)) error {
	cfg.Node = true
	return checkHost(ctx, engine, cfg, listening, false, emit)
}

// checkHost runs the host checks of a start (controlPlane) or of a
// worker's join, with listening read from /proc unless given, and fails
// on the first that does not pass, reporting each.
func checkHost(ctx context.Context, engine containers.Engine, cfg Config, listening func() map[int]string, controlPlane bool, emit func(Event)) error {
	if listening == nil {
		listening = listeners
	}
	findings, err := hostChecks(ctx, engine, cfg, listening, controlPlane)
	if err != nil {
		return err
	}
	return failures(findings, emit)
}

// writeBootstrapKubeconfig writes kubelet's bootstrap kubeconfig: the
// cluster as found, the token as its credential (root only).
func writeBootstrapKubeconfig(path, server string, caPEM []byte, tok string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["default"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	kc.AuthInfos["tls-bootstrap"] = &clientcmdapi.AuthInfo{Token: tok}
	kc.Contexts["default"] = &clientcmdapi.Context{Cluster: "default", AuthInfo: "tls-bootstrap"}
	kc.CurrentContext = "default"
	data, err := clientcmd.Write(*kc)
	if err != nil {
		return err
	}
	_, err = atomicfile.WriteIfChanged(path, data, 0o600)
	return err
}
