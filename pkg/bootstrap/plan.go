package bootstrap

import (
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/host"
	"github.com/dk8s/dk8s/pkg/images"
	"github.com/dk8s/dk8s/pkg/mirror"
)

// Config is what a control plane is made from.
type Config struct {
	// ClusterName labels every container; one host can tell its clusters
	// apart by it.
	ClusterName string
	// Dir is the host directory dk8s owns: pki/, kubeconfigs and etcd's
	// data live under it, outside every container.
	Dir string
	// NodeName and AdvertiseAddress identify this host to the cluster.
	NodeName         string
	AdvertiseAddress net.IP
	// AdvertiseGiven says the address was given (a flag, the config file,
	// the cluster's marker) rather than found on the default route.
	AdvertiseGiven bool
	// ServiceCIDR and PodCIDR are the cluster's address ranges.
	ServiceCIDR string
	PodCIDR     string
	// ExtraArgs override or add flags per component:
	// ExtraArgs["kube-apiserver"]["v"] = "4".
	ExtraArgs map[string]map[string]string

	// Node makes this host a node too: the pod runtime and kubelet,
	// supervised by Docker, and the add-ons (kube-proxy, CoreDNS).
	Node bool
	// KubeletBinary is the kubelet to run; "" finds one (see kubeletBinary).
	KubeletBinary string
	// ShimBinary is a static dk8s binary that the supervising containers
	// start to enter the host's root; "" means the running executable.
	ShimBinary string
	// Mirrors are where pods' registry.k8s.io images are pulled from.
	Mirrors []mirror.Mirror
	// BinaryMirrors are where a kubelet the host lacks is fetched from, in
	// order; none means dl.k8s.io.
	BinaryMirrors []mirror.BinaryMirror
	// MaxPods caps the pods this node runs; 0 is kubelet's default (110).
	MaxPods int
	// HA readies the control plane for others to join it: etcd listens on
	// the advertise address too (client and peer ports, mutual TLS with
	// its own CA), as kubeadm's stacked etcd does. Without it etcd answers
	// on loopback only.
	HA bool
	// EtcdInitialCluster and EtcdClusterState are how this member's etcd
	// first starts: "" and "" for a new cluster of one; a joining member's
	// list of every member ("name=https://ADDR:2380,...") and "existing".
	// Kept in the cluster's marker, so reruns plan the same container.
	EtcdInitialCluster string
	EtcdClusterState   string
	// ControlPlaneEndpoint is a HOST:PORT in front of every control
	// plane's apiserver that the user brings (keepalived and haproxy,
	// kube-vip, a cloud balancer): the apiserver's certificate names it,
	// and workers and the add-ons reach the cluster there. "" for none:
	// each node then runs a balancer of its own.
	ControlPlaneEndpoint string
	// SnapshotInterval is how often the etcd-snapshotter saves a snapshot
	// (0: never); nil keeps the cluster's (its marker), else
	// DefaultSnapshotInterval. SnapshotRetention is how many of its
	// snapshots it keeps; 0 keeps the cluster's, else
	// DefaultSnapshotRetention.
	SnapshotInterval  *time.Duration
	SnapshotRetention int
	// Profile is what the node trades between memory and CPU; "" keeps
	// the cluster's (its marker), else ProfileDefault.
	Profile Profile
	// ProxyMode is kube-proxy's mode across the cluster (one of
	// addons.ProxyModes); "" is iptables for a new cluster and, for one
	// that exists, the mode it has.
	ProxyMode string
}

// confMount is where a component finds the files of the cluster directory
// its flags name, each bound in read-only (fileMounts).
const confMount = "/etc/dk8s"

// Plan turns a configuration and a release of the lock into the containers
// of the control plane. It is a pure function: it reads nothing and
// changes nothing, so the same input always makes the same specs (and
// hashes), and a rerun of `dk8s start` recreates nothing.
func Plan(cfg Config, rel *images.Release) ([]containers.Spec, error) {
	if cfg.ClusterName == "" || cfg.Dir == "" || cfg.NodeName == "" || cfg.AdvertiseAddress == nil {
		return nil, fmt.Errorf("a control plane needs a cluster name, a directory, a node name and an address")
	}
	if _, err := cfg.ServiceIP(); err != nil {
		return nil, err
	}
	if _, err := host.NodePodSubnet(cfg.PodCIDR); err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, c := range controlPlane() {
		known[c.Name] = true
	}
	for comp := range cfg.ExtraArgs {
		if !known[comp] {
			return nil, fmt.Errorf("extra args for unknown component %q: use one of %s", comp, strings.Join(slices.Sorted(maps.Keys(known)), ", "))
		}
	}
	var specs []containers.Spec
	for _, c := range controlPlane() {
		spec, err := c.spec(cfg, rel)
		if err != nil {
			return nil, err
		}
		specs = append(specs, spec)
	}
	return specs, nil
}

// spec plans a control-plane component's container: host network,
// restart=always, its image from the lock, its flags with --extra-args
// over them, and exactly the files those flags name.
func (c Component) spec(cfg Config, rel *images.Release) (containers.Spec, error) {
	imageOf, entry := c.Name, []string{c.Name}
	if c.ImageOf != "" {
		imageOf = c.ImageOf
	}
	if c.Entrypoint != nil {
		entry = c.Entrypoint
	}
	img, ok := rel.Image(imageOf)
	if !ok {
		return containers.Spec{}, fmt.Errorf("the lock's release %s has no %s image", rel.Kubernetes, imageOf)
	}
	f := c.Flags(cfg)
	for k, v := range cfg.ExtraArgs[c.Name] {
		f[k] = v
	}
	mounts := fileMounts(cfg.Dir, f)
	if c.Mounts != nil {
		mounts = append(mounts, c.Mounts(cfg)...)
	}
	return containers.Spec{
		Name:       containerName(c.Name),
		Image:      img.Name,
		Entrypoint: entry,
		Args:       containers.Flags(f),
		Labels: map[string]string{
			containers.LabelComponent: c.Name,
			containers.LabelCluster:   cfg.ClusterName,
			containers.LabelDir:       cfg.Dir,
		},
		Env:         cfg.Profile.env(),
		Mounts:      mounts,
		HostNetwork: true,
		// always, not unless-stopped or on-failure: the Docker daemon is
		// dk8s's only supervisor. A component must come back after a
		// crash (on-failure would do), after a clean exit such as the
		// apiserver leaving when etcd was briefly gone (on-failure would
		// not), and after a reboot even if someone ran `docker stop` on
		// it to debug (unless-stopped would not). `dk8s stop` is the way
		// to keep it down: it removes nothing, and start brings it back.
		RestartAlways: true,
		User:          c.User,
	}.WithHash(), nil
}

// fileMounts binds into a component exactly the files of the cluster
// directory its flags name, each read-only, as kubeadm gives each static pod
// only its own: the scheduler sees its kubeconfig and nothing else, etcd
// its own certificates, and no component but the controller-manager the
// cluster CA's key. Derived from the flags, so an --extra-args that names
// another file of the directory gets that file too, and nothing more.
func fileMounts(dir string, flags map[string]string) []containers.Mount {
	var mounts []containers.Mount
	seen := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(flags)) {
		rel, ok := strings.CutPrefix(flags[name], confMount+"/")
		if !ok || seen[rel] {
			continue
		}
		seen[rel] = true
		mounts = append(mounts, containers.Mount{Source: filepath.Join(dir, filepath.FromSlash(rel)), Target: flags[name], ReadOnly: true})
	}
	return mounts
}

func pkiPath(name string) string { return confMount + "/pki/" + name }

func kubeconfigPath(name string) string { return confMount + "/" + name + ".conf" }
