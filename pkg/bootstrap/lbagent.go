package bootstrap

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dk8s/dk8s/internal/wait"
	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/images"
)

// Every node of a cluster of several control planes reaches the apiservers
// through a balancer of its own on loopback (pkg/lb), as RKE1's nginx-proxy
// and k3s's agents do: a worker's kubelet, and every node's kube-proxy and
// flanneld, keep working while any control plane does.

// LBAddress is where a node's balancer listens.
const LBAddress = "127.0.0.1:6444"

// lbContainer runs the balancer: dk8s itself on the lock's pause image, as
// the csr-approver is.
const lbContainer = "dk8s-apiserver-lb"

// settingAPIServers, in the cluster's settings, lists the control planes'
// apiservers (HOST:6443), which a balancer starts from.
const settingAPIServers = "apiServers"

func lbURL() string { return "https://" + LBAddress }

// apiServerAddr is this control plane's apiserver as a balancer reaches it.
func apiServerAddr(cfg Config) string {
	return net.JoinHostPort(cfg.AdvertiseAddress.String(), "6443")
}

// mergeList adds add to the comma-separated list old, sorted, without
// duplicates.
func mergeList(old string, add ...string) string {
	var out []string
	for _, e := range append(strings.Split(old, ","), add...) {
		if e != "" {
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return strings.Join(slices.Compact(out), ",")
}

// lbSpec is the balancer's container, starting from servers and following
// the cluster's apiservers with the node's kubeconfig.
func lbSpec(cfg Config, rel *images.Release, servers []string, kubeconfig string) (containers.Spec, error) {
	pause, ok := rel.Image("pause")
	if !ok {
		return containers.Spec{}, fmt.Errorf("the lock's release %s has no pause image", rel.Kubernetes)
	}
	args := []string{"--listen", LBAddress, "--ca", filepath.Join(cfg.PKIDir(), "ca.crt"), "--kubeconfig", kubeconfig}
	for _, s := range servers {
		args = append(args, "--server", s)
	}
	return containers.Spec{
		Name:       lbContainer,
		Image:      pause.Name,
		Entrypoint: []string{shimTarget, "apiserver-lb"},
		Args:       args,
		Env:        cfg.Profile.env(),
		Labels: map[string]string{
			containers.LabelComponent: "apiserver-lb",
			containers.LabelCluster:   cfg.ClusterName,
			containers.LabelDir:       cfg.Dir,
		},
		// The node's kubeconfig names its certificates by their host paths
		// (kubelet rotates them), so the directory is bound where it is.
		Mounts: []containers.Mount{
			{Source: shimPath(cfg.Dir), Target: shimTarget, ReadOnly: true},
			{Source: cfg.Dir, Target: cfg.Dir, ReadOnly: true},
		},
		// Root: the node's kubeconfig and keys are root's alone, and
		// upstream's pause image declares another user.
		User:          "0:0",
		HostNetwork:   true,
		RestartAlways: true,
	}.WithHash(), nil
}

// ensureLB runs the node's balancer and waits until it accepts.
func ensureLB(ctx context.Context, engine containers.Engine, cfg Config, rel *images.Release, servers []string, kubeconfig string, timeout time.Duration, emit func(Event)) error {
	spec, err := lbSpec(cfg, rel, servers, kubeconfig)
	if err != nil {
		return err
	}
	ens, err := containers.Ensure(ctx, engine, spec)
	if err != nil {
		return fmt.Errorf("the apiserver balancer: %w", err)
	}
	emit(Event{Step: "container", Component: "apiserver-lb", Message: lbContainer + " " + ens.String()})
	err = wait.Until(ctx, 200*time.Millisecond, timeout, func(context.Context) (bool, string, error) {
		c, err := net.DialTimeout("tcp", LBAddress, time.Second)
		if err != nil {
			return false, err.Error(), nil
		}
		c.Close()
		return true, "", nil
	})
	if err != nil {
		return &ComponentError{Component: "apiserver-lb", Err: err, Logs: lastLogs(engine, lbContainer, 15), Hint: "'docker logs " + lbContainer + "'"}
	}
	emit(Event{Step: "healthy", Component: "apiserver-lb", Message: "the apiserver balancer answers on " + LBAddress, Done: true})
	return nil
}
