package bootstrap

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/host"
	"github.com/dk8s/dk8s/pkg/images"
	"github.com/dk8s/dk8s/pkg/mirror"
)

// Components of the control plane, in the order they are started (and the
// reverse of the order they are stopped in).
var Components = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

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
}

// Paths inside every container: the host's Dir is mounted read-only at
// confMount (its pki/ and kubeconfigs), and etcd's data read-write.
const (
	confMount = "/etc/dk8s"
	etcdData  = "/var/lib/etcd"
)

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
	for comp := range cfg.ExtraArgs {
		if !slices.Contains(Components, comp) {
			return nil, fmt.Errorf("extra args for unknown component %q: use one of %s", comp, strings.Join(Components, ", "))
		}
	}
	flags := map[string]map[string]string{
		"etcd":                    etcdFlags(cfg),
		"kube-apiserver":          apiserverFlags(cfg),
		"kube-controller-manager": controllerManagerFlags(cfg),
		"kube-scheduler":          schedulerFlags(),
	}
	var specs []containers.Spec
	for _, comp := range Components {
		img, ok := rel.Image(comp)
		if !ok {
			return nil, fmt.Errorf("the lock's release %s has no %s image", rel.Kubernetes, comp)
		}
		f := flags[comp]
		for k, v := range cfg.ExtraArgs[comp] {
			f[k] = v
		}
		mounts := fileMounts(cfg.Dir, f)
		if comp == "etcd" {
			mounts = append(mounts, containers.Mount{Source: filepath.Join(cfg.Dir, "etcd"), Target: etcdData})
		}
		specs = append(specs, containers.Spec{
			Name:       containerName(comp),
			Image:      img.Name,
			Entrypoint: []string{comp},
			Args:       containers.Flags(f),
			Labels: map[string]string{
				containers.LabelComponent: comp,
				containers.LabelCluster:   cfg.ClusterName,
				containers.LabelDir:       cfg.Dir,
			},
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
		}.WithHash())
	}
	return specs, nil
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
	for _, name := range sortedKeys(flags) {
		rel, ok := strings.CutPrefix(flags[name], confMount+"/")
		if !ok || seen[rel] {
			continue
		}
		seen[rel] = true
		mounts = append(mounts, containers.Mount{Source: filepath.Join(dir, filepath.FromSlash(rel)), Target: flags[name], ReadOnly: true})
	}
	return mounts
}

func pki(name string) string { return confMount + "/pki/" + name }

func kubeconfigPath(name string) string { return confMount + "/" + name + ".conf" }

func etcdFlags(cfg Config) map[string]string {
	client, peer := "https://127.0.0.1:2379", "https://127.0.0.1:2380"
	return map[string]string{
		"name":                        cfg.NodeName,
		"data-dir":                    etcdData,
		"listen-client-urls":          client,
		"advertise-client-urls":       client,
		"listen-peer-urls":            peer,
		"initial-advertise-peer-urls": peer,
		"initial-cluster":             cfg.NodeName + "=" + peer,
		"listen-metrics-urls":         "http://127.0.0.1:2381",
		"client-cert-auth":            "true",
		"peer-client-cert-auth":       "true",
		"cert-file":                   pki("etcd/server.crt"),
		"key-file":                    pki("etcd/server.key"),
		"trusted-ca-file":             pki("etcd/ca.crt"),
		"peer-cert-file":              pki("etcd/peer.crt"),
		"peer-key-file":               pki("etcd/peer.key"),
		"peer-trusted-ca-file":        pki("etcd/ca.crt"),
		"snapshot-count":              "10000",
	}
}

func apiserverFlags(cfg Config) map[string]string {
	return map[string]string{
		"advertise-address":                  cfg.AdvertiseAddress.String(),
		"allow-privileged":                   "true",
		"anonymous-auth":                     "true", // as kubeadm leaves it: RBAC lets anonymous reach only /livez, /readyz, /healthz, /version
		"authorization-mode":                 "Node,RBAC",
		"client-ca-file":                     pki("ca.crt"),
		"enable-admission-plugins":           "NodeRestriction",
		"enable-bootstrap-token-auth":        "true",
		"etcd-cafile":                        pki("etcd/ca.crt"),
		"etcd-certfile":                      pki("apiserver-etcd-client.crt"),
		"etcd-keyfile":                       pki("apiserver-etcd-client.key"),
		"etcd-servers":                       "https://127.0.0.1:2379",
		"kubelet-client-certificate":         pki("apiserver-kubelet-client.crt"),
		"kubelet-client-key":                 pki("apiserver-kubelet-client.key"),
		"kubelet-preferred-address-types":    "InternalIP,ExternalIP,Hostname",
		"proxy-client-cert-file":             pki("front-proxy-client.crt"),
		"proxy-client-key-file":              pki("front-proxy-client.key"),
		"requestheader-allowed-names":        "front-proxy-client",
		"requestheader-client-ca-file":       pki("front-proxy-ca.crt"),
		"requestheader-extra-headers-prefix": "X-Remote-Extra-",
		"requestheader-group-headers":        "X-Remote-Group",
		"requestheader-username-headers":     "X-Remote-User",
		"secure-port":                        "6443",
		"service-account-issuer":             "https://kubernetes.default.svc.cluster.local",
		"service-account-key-file":           pki("sa.pub"),
		"service-account-signing-key-file":   pki("sa.key"),
		"service-cluster-ip-range":           cfg.ServiceCIDR,
		"tls-cert-file":                      pki("apiserver.crt"),
		"tls-private-key-file":               pki("apiserver.key"),
	}
}

func controllerManagerFlags(cfg Config) map[string]string {
	return map[string]string{
		"allocate-node-cidrs":              "true",
		"authentication-kubeconfig":        kubeconfigPath("controller-manager"),
		"authorization-kubeconfig":         kubeconfigPath("controller-manager"),
		"bind-address":                     "127.0.0.1",
		"client-ca-file":                   pki("ca.crt"),
		"cluster-cidr":                     cfg.PodCIDR,
		"cluster-name":                     cfg.ClusterName,
		"cluster-signing-cert-file":        pki("ca.crt"), // signs kubelet CSRs, so certificate rotation works
		"cluster-signing-key-file":         pki("ca.key"),
		"controllers":                      "*,bootstrapsigner,tokencleaner",
		"kubeconfig":                       kubeconfigPath("controller-manager"),
		"leader-elect":                     "true",
		"requestheader-client-ca-file":     pki("front-proxy-ca.crt"),
		"root-ca-file":                     pki("ca.crt"),
		"service-account-private-key-file": pki("sa.key"),
		"service-cluster-ip-range":         cfg.ServiceCIDR,
		"use-service-account-credentials":  "true",
	}
}

func schedulerFlags() map[string]string {
	return map[string]string{
		"authentication-kubeconfig": kubeconfigPath("scheduler"),
		"authorization-kubeconfig":  kubeconfigPath("scheduler"),
		"bind-address":              "127.0.0.1",
		"kubeconfig":                kubeconfigPath("scheduler"),
		"leader-elect":              "true",
	}
}
