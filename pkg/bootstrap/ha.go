package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/dk8s/dk8s/internal/wait"
	"github.com/dk8s/dk8s/pkg/containers"
	etcdc "github.com/dk8s/dk8s/pkg/etcd"
	"github.com/dk8s/dk8s/pkg/images"
)

// A highly available control plane: more control planes join the first
// with 'dk8s join --control-plane', each with its own etcd member (stacked,
// as kubeadm's), apiserver, controller-manager and scheduler (leader
// elected). The first must be started with --ha, so that its etcd answers
// the others at its address.

// The keys of the cluster's settings (clusterSettingsName) a joining
// control plane reads.
const (
	settingHA            = "ha"            // "true" once a control plane listens for others
	settingEtcdEndpoints = "etcdEndpoints" // the members' client URLs, comma-separated
	settingEndpoint      = "controlPlaneEndpoint"
)

// etcdReady runs once this host's etcd is healthy. Where the control plane
// takes others (cfg.HA), its member must be known at its address (a
// cluster started without --ha advertised loopback), and a member that
// joined as a learner is promoted to a voter once it has caught up.
func etcdReady(ctx context.Context, cfg Config, opts StartOptions) error {
	if !cfg.HA {
		return nil
	}
	err := fixMember(ctx, cfg, opts)
	// Once this control plane has run, its member is a voter at its
	// address: a later start with the other members away (their machines
	// down) must not stop at asking them.
	if kept, rerr := ReadSettings(cfg.Dir); err != nil && rerr == nil && kept.KubernetesVersion != "" {
		return nil
	}
	return err
}

func fixMember(ctx context.Context, cfg Config, opts StartOptions) error {
	// A learner serves no membership request: a joined member asks the
	// members it joined first.
	endpoints := append(otherMembers(cfg.EtcdInitialCluster, cfg.NodeName), etcdc.DefaultEndpoint)
	c, err := etcdc.New(ctx, endpoints, etcdc.PKIFiles(cfg.PKIDir()))
	if err != nil {
		return err
	}
	defer c.Close()
	members, err := c.Members(ctx)
	if err != nil {
		return fmt.Errorf("listing etcd's members: %w", err)
	}
	self, ok := etcdc.MemberNamed(members, cfg.NodeName)
	if !ok {
		return fmt.Errorf("this host's etcd (%s) is not a member of the etcd cluster it answers for: %s", cfg.NodeName, etcdc.InitialCluster(members))
	}
	peer := etcdPeerURL(cfg.AdvertiseAddress)
	if !slices.Equal(self.PeerURLs, []string{peer}) {
		if err := c.UpdatePeerURLs(ctx, self.ID, []string{peer}); err != nil {
			return err
		}
	}
	if self.Learner {
		timeout := opts.Timeout
		if timeout == 0 {
			timeout = 3 * time.Minute
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := c.Promote(pctx, self.ID, time.Second); err != nil {
			return err
		}
	}
	return nil
}

// haSettings are the cluster settings a control plane adds for others to
// join it: that it takes them, and its etcd's client URL among the
// members' (others' kept).
func haSettings(cfg Config, old map[string]string) map[string]string {
	if !cfg.HA {
		return nil
	}
	var endpoints []string
	for _, e := range strings.Split(old[settingEtcdEndpoints], ",") {
		if e != "" {
			endpoints = append(endpoints, e)
		}
	}
	endpoints = append(endpoints, etcdClientURL(cfg.AdvertiseAddress))
	slices.Sort(endpoints)
	out := map[string]string{settingHA: "true", settingEtcdEndpoints: strings.Join(slices.Compact(endpoints), ","),
		settingAPIServers: mergeList(old[settingAPIServers], apiServerAddr(cfg))}
	if cfg.ControlPlaneEndpoint != "" {
		out[settingEndpoint] = cfg.ControlPlaneEndpoint
	}
	return out
}

// ControlPlaneJoinConfig is what a machine joining as a control plane is
// given: a worker's, and the key that opens the cluster's certificates.
type ControlPlaneJoinConfig struct {
	JoinConfig
	// CertificateKey opens the certificates 'dk8s token create
	// --control-plane' sealed in the cluster.
	CertificateKey string
}

// JoinControlPlane makes this host another control plane of the cluster at
// jc.Server: the token and the CA pin checked as for a worker, the
// cluster's CAs and service-account keys opened with the certificate key,
// this host's own certificates made for its names, its etcd added to the
// cluster as a learner and promoted once caught up, then its apiserver,
// controller-manager, scheduler and node, as 'dk8s start' runs them. Bad
// input is refused before anything is written. A rerun on a host that
// joined is a 'dk8s start'.
func JoinControlPlane(ctx context.Context, engine containers.Engine, jc ControlPlaneJoinConfig, lock *images.Lock, opts JoinOptions) error {
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
	if jc.Dir, err = AbsDir(jc.Dir); err != nil {
		return err
	}
	if _, err := certificateKeyBytes(jc.CertificateKey); err != nil {
		return err
	}
	kept, err := ReadSettings(jc.Dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if kept != nil {
		return fmt.Errorf("%s already holds a cluster's node (%s): run 'dk8s start' to bring this control plane back, or 'dk8s reset --purge' first to join another", jc.Dir, kept.Role)
	}
	if _, err := os.Stat(jc.Dir); err == nil {
		if empty, err := holdsNothingElse(jc.Dir); err != nil || !empty {
			return fmt.Errorf("%s is not empty and was not made by dk8s (no %s in it): choose a new or empty --dir", jc.Dir, MarkerFile)
		}
	}
	if err := jc.Config.Resolve(); err != nil {
		return err
	}
	_, cs, err := discoverCluster(ctx, jc.JoinConfig, emit)
	if err != nil {
		return err
	}
	rel, err := joinRelease(ctx, cs, lock)
	if err != nil {
		return err
	}
	if err := opts.chooseMirrors(ctx, rel, &jc.Config); err != nil {
		return err
	}
	if _, err := clusterRanges(ctx, cs, &jc.Config); err != nil {
		return err
	}
	endpoints, err := joinableControlPlane(ctx, cs, server)
	if err != nil {
		return err
	}
	if err := nameFree(ctx, cs, jc.NodeName); err != nil {
		return err
	}
	cfg := jc.Config
	cfg.HA, cfg.Node = true, true
	// The host checks of a first control plane's start, before the
	// cluster is asked to take this one.
	if err := checkHost(ctx, engine, cfg, opts.listening, true, emit); err != nil {
		return err
	}
	if _, err := findShim(cfg); err != nil {
		return err
	}
	if _, err := findNodeTools(ctx, engine, cfg, rel, emit); err != nil {
		return err
	}
	if opts.Pull != nil {
		var all []string
		for _, img := range rel.Images {
			all = append(all, img.Component)
		}
		if err := opts.Pull(ctx, rel, all); err != nil {
			return err
		}
	}
	specs, err := Plan(cfg, rel)
	if err != nil {
		return err
	}
	if err := missingImages(ctx, engine, specs); err != nil {
		return err
	}
	// The certificates are opened (in memory) before anything is written:
	// a wrong key changes nothing.
	shared, err := openCerts(ctx, cs, jc.CertificateKey)
	if err != nil {
		return err
	}
	emit(Event{Step: "discovery", Message: "the cluster's certificates opened with the certificate key", Done: true})

	// From here on the host changes. Until etcd takes the new member,
	// what is written is taken back on a failure: the directory was empty,
	// and keys left in it would be neither used nor purged.
	if err := os.MkdirAll(cfg.PKIDir(), 0o700); err != nil {
		return err
	}
	joined := false
	defer func() {
		if !joined {
			os.RemoveAll(cfg.PKIDir())
		}
	}()
	if err := writeCerts(cfg.PKIDir(), shared); err != nil {
		return err
	}
	pcfg, err := cfg.PKIConfig()
	if err != nil {
		return err
	}
	if _, _, err := EnsurePKI(cfg.PKIDir(), pcfg); err != nil {
		return err
	}
	// This host's etcd joins the others' as a learner: it cannot cost
	// them their quorum while it catches up.
	ec, err := etcdc.New(ctx, endpoints, etcdc.PKIFiles(cfg.PKIDir()))
	if err != nil {
		return err
	}
	defer ec.Close()
	added, err := ec.AddLearner(ctx, cfg.NodeName, etcdPeerURL(cfg.AdvertiseAddress))
	if err != nil {
		return fmt.Errorf("%w (the members are at %s)", err, strings.Join(endpoints, ", "))
	}
	joined = true
	emit(Event{Step: "etcd", Message: fmt.Sprintf("etcd member %s added as a learner", cfg.NodeName), Done: true})
	cfg.EtcdInitialCluster, cfg.EtcdClusterState = added.InitialCluster, "existing"
	if err := writeSettings(cfg.Dir, settingsOf(cfg)); err != nil {
		return err
	}
	if err := Start(ctx, engine, cfg, rel, opts.StartOptions); err != nil {
		return fmt.Errorf("%w\nthis host's etcd member %s was added to the cluster; 'dk8s start' here finishes the join, 'dk8s reset --purge' here takes it out again", err, cfg.NodeName)
	}
	return nil
}

// joinableControlPlane checks that the cluster takes more control planes
// and returns its etcd members' client URLs.
func joinableControlPlane(ctx context.Context, cs kubernetes.Interface, server string) ([]string, error) {
	cm, err := cs.CoreV1().ConfigMaps(addonNS).Get(ctx, clusterSettingsName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading the cluster's settings: %w", err)
	}
	if cm.Data[settingHA] != "true" || cm.Data[settingEtcdEndpoints] == "" {
		return nil, fmt.Errorf("the control plane at %s does not take other control planes: run 'dk8s start --ha' on it first (its etcd restarts, answering at its address with mutual TLS)", server)
	}
	return strings.Split(cm.Data[settingEtcdEndpoints], ","), nil
}

// UploadControlPlaneCerts seals this control plane's shared certificates
// for a machine joining as a control plane, under a new certificate key it
// returns, for CertsTTL. The control plane must take others (--ha).
func UploadControlPlaneCerts(ctx context.Context, cs kubernetes.Interface, cfg Config) (string, error) {
	kept, err := ReadSettings(cfg.Dir)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", filepath.Join(cfg.Dir, MarkerFile), err)
	}
	if kept.IsWorker() {
		return "", errors.New("this host is a worker: make control-plane tokens on a control plane")
	}
	if !kept.HA {
		return "", errors.New("this control plane does not take other control planes: run 'dk8s start --ha' first (its etcd restarts, answering at its address with mutual TLS), then make the token")
	}
	key, err := NewCertificateKey()
	if err != nil {
		return "", err
	}
	if err := UploadCerts(ctx, cs, cfg.PKIDir(), key); err != nil {
		return "", err
	}
	return key, nil
}

// leaveEtcd takes this control plane's etcd member out of the cluster's
// before its containers go, so the others do not count a member that will
// never answer again against their quorum. It refuses, unless force, when
// the members left would not make a quorum; a cluster of one has nothing
// to leave. It returns what it removed ("" for nothing).
func leaveEtcd(ctx context.Context, cfg Config, purge, force bool) (string, error) {
	kept, err := ReadSettings(cfg.Dir)
	if err != nil || kept.IsWorker() || !kept.HA {
		return "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	endpoints := append([]string{etcdc.DefaultEndpoint}, otherMembers(kept.EtcdInitialCluster, kept.NodeName)...)
	c, err := etcdc.New(ctx, endpoints, etcdc.PKIFiles(cfg.PKIDir()))
	if err != nil {
		return "", err
	}
	defer c.Close()
	st, err := c.Status(ctx, 3*time.Second)
	if err != nil {
		if force {
			return "", nil
		}
		return "", fmt.Errorf("this control plane's etcd member cannot be taken out of the cluster: etcd does not answer for its members (%v), as when it has lost its quorum or is stopped; start the control planes first ('dk8s start' on each), or pass --force to reset anyway (the member then stays listed until removed from another control plane)", err)
	}
	self, ok := etcdc.MemberNamed(st.Members, kept.NodeName)
	if !ok || len(st.Members) == 1 {
		return "", nil
	}
	// A member that left cannot start again on its data: the directory a
	// plain reset keeps would be of no use.
	if !purge {
		return "", fmt.Errorf("this control plane is one of %d etcd members: a reset takes it out of etcd for good, and its data could not start again. To take it down for a while: 'dk8s stop'. To take it out: 'dk8s reset --purge' ('dk8s join --control-plane' brings it back later); nothing was changed", len(st.Members))
	}
	voters, answering := 0, 0
	for i, m := range st.Members {
		if m.Learner || m.ID == self.ID {
			continue
		}
		voters++
		if st.Endpoints[i].Unreachable == "" {
			answering++
		}
	}
	if need := voters/2 + 1; answering < need && !force {
		return "", fmt.Errorf("taking this control plane out would leave etcd without a quorum: %d of the other %d members answer, and %d must; start them first, or pass --force (the cluster then stops taking writes)", answering, voters, need)
	}
	// Asked through the members that stay: a member asked to remove
	// itself stops as it applies the removal, and may answer "server
	// stopped" instead of the removal's success.
	remover := c
	var stay []string
	for i, m := range st.Members {
		// A learner refuses membership changes.
		if m.ID == self.ID || m.Learner || st.Endpoints[i].Unreachable != "" {
			continue
		}
		for _, u := range m.ClientURLs {
			if !strings.Contains(u, "://127.0.0.1:") && !strings.Contains(u, "://localhost:") {
				stay = append(stay, u)
			}
		}
	}
	if len(stay) > 0 {
		oc, err := etcdc.New(ctx, stay, etcdc.PKIFiles(cfg.PKIDir()))
		if err != nil {
			return "", err
		}
		defer oc.Close()
		remover = oc
	}
	// etcd refuses ("unhealthy cluster") until its leader has heard from
	// the members left for a few seconds, as just after one came back.
	var rerr error
	werr := wait.Until(ctx, time.Second, 25*time.Second, func(context.Context) (bool, string, error) {
		rerr = remover.Remove(ctx, self.ID)
		if rerr != nil && strings.Contains(rerr.Error(), "unhealthy cluster") {
			return false, rerr.Error(), nil
		}
		return true, "", nil
	})
	if (rerr != nil || werr != nil) && force {
		// Forced: the reset goes on; the member stays listed until a
		// control plane removes it (etcdctl member remove).
		return "", nil
	}
	if rerr != nil {
		return "", fmt.Errorf("%w: start the other control planes first ('dk8s start' on each), or pass --force", rerr)
	}
	if werr != nil {
		return "", werr
	}
	return "etcd member " + self.Name, nil
}

// otherMembers are the client URLs of the members of initialCluster (etcd's
// --initial-cluster) but self's.
func otherMembers(initialCluster, self string) []string {
	var out []string
	for _, part := range strings.Split(initialCluster, ",") {
		if name, peer, ok := strings.Cut(part, "="); ok && name != self {
			out = append(out, strings.Replace(peer, ":2380", ":2379", 1))
		}
	}
	return out
}
