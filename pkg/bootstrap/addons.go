package bootstrap

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/dk8s/dk8s/pkg/addons"
	"github.com/dk8s/dk8s/pkg/images"
)

type kubeClient = kubernetes.Interface

func clientFor(kubeconfig string) (kubeClient, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	rc.Timeout = 15 * time.Second
	// client-go's default of 5 requests a second (a burst of 10) held a
	// start's few dozen writes (RBAC, the add-ons) back by a second and
	// more; dk8s's own requests are few and must not wait on themselves.
	rc.QPS, rc.Burst = 100, 200
	return kubernetes.NewForConfig(rc)
}

const addonNS = addons.Namespace

// addonConfig is what this node's start makes the add-ons from (package
// addons): the lock's images, already in the runtime under their canonical
// names, with the IDs the runtime gave them. An upgrade (another
// --kubernetes-version) moves them to the release's images after the
// node, as kubeadm does.
//
// The add-ons run on every node but are one set for the cluster: they
// follow the profile of the control plane that made the cluster. One that
// joined it leaves their environment alone, or each start on a control
// plane of another profile would roll them across the cluster.
func addonConfig(cfg Config, rel *images.Release, dnsIP string, imageIDs map[string]string, upgrade bool) (addons.Config, error) {
	img := func(component string) (addons.Image, error) {
		i, ok := rel.Image(component)
		if !ok {
			return addons.Image{}, fmt.Errorf("the lock's release %s names no %s image: use a lock that does (dk8s images)", rel.Kubernetes, component)
		}
		return addons.Image{Name: i.Name, ID: imageIDs[i.Name]}, nil
	}
	c := addons.Config{
		PodCIDR: cfg.PodCIDR, DNSIP: dnsIP, Server: addonServer(cfg), ProxyMode: cfg.ProxyMode,
		Env: cfg.Profile.podEnv(), EnvNames: profileEnvNames(), KeepEnv: cfg.EtcdClusterState == "existing",
		Upgrade: upgrade, CoreDNSReplicas: cfg.Profile.coreDNSReplicas(),
	}
	var err error
	if c.Flannel, err = img("flannel"); err != nil {
		return c, err
	}
	if c.KubeProxy, err = img("kube-proxy"); err != nil {
		return c, err
	}
	c.CoreDNS, err = img("coredns")
	return c, err
}

// ensureAddons makes the pod network, kube-proxy and CoreDNS, or brings
// those there are to this dk8s's (addons.Ensure).
func ensureAddons(ctx context.Context, cs kubeClient, cfg Config, rel *images.Release, dnsIP string, imageIDs map[string]string, upgrade bool) error {
	c, err := addonConfig(cfg, rel, dnsIP, imageIDs, upgrade)
	if err != nil {
		return err
	}
	return addons.Ensure(ctx, cs, c)
}

// addonServer is where the node add-ons (kube-proxy, flanneld) reach the
// apiserver: the control plane's address, or where there are several the
// node's own balancer, which follows them all.
func addonServer(cfg Config) string {
	if cfg.ControlPlaneEndpoint != "" {
		return cfg.ClusterURL()
	}
	if cfg.HA {
		return lbURL()
	}
	return cfg.APIServerURL()
}
