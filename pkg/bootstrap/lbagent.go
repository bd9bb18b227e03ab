package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dk8s/dk8s/internal/atomicfile"
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
// the cluster's apiservers with the node's identity. It sees only what it
// reads: its own directory (the cluster CA's certificate, its kubeconfig)
// and kubelet's certificates, which kubelet rotates there; not the cluster
// directory, which holds the cluster's keys on a control plane.
func lbSpec(cfg Config, rel *images.Release, servers []string) (containers.Spec, error) {
	pause, ok := rel.Image("pause")
	if !ok {
		return containers.Spec{}, fmt.Errorf("the lock's release %s has no pause image", rel.Kubernetes)
	}
	dir := lbDir(cfg)
	args := []string{"--listen", LBAddress, "--ca", filepath.Join(dir, "ca.crt"), "--kubeconfig", filepath.Join(dir, "kubeconfig")}
	for _, s := range servers {
		args = append(args, "--server", s)
	}
	kubeletPKI := filepath.Join(cfg.Dir, "kubelet", "pki")
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
		// Directories, each where it is on the host: files rewritten in
		// them (a renewed kubeconfig, a rotated certificate) show at once.
		Mounts: []containers.Mount{
			{Source: shimPath(cfg.Dir), Target: shimTarget, ReadOnly: true},
			{Source: dir, Target: dir, ReadOnly: true},
			{Source: kubeletPKI, Target: kubeletPKI, ReadOnly: true},
		},
		// Root: the node's kubeconfig and keys are root's alone, and
		// upstream's pause image declares another user.
		User:          "0:0",
		HostNetwork:   true,
		RestartAlways: true,
	}.WithHash(), nil
}

// lbDir holds what the balancer reads besides kubelet's certificates.
func lbDir(cfg Config) string { return filepath.Join(cfg.Dir, "apiserver-lb") }

// writeLBFiles writes the balancer's CA certificate and kubeconfig: a copy
// of the node's kubelet.conf where there is one (a control plane's embeds
// its identity; a worker's kubelet names its rotated certificate), else,
// on a worker whose kubelet has not written it yet, one that names the
// certificate kubelet will write.
func writeLBFiles(cfg Config, kubeletConf string) error {
	dir := lbDir(cfg)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ca, err := os.ReadFile(filepath.Join(cfg.PKIDir(), "ca.crt"))
	if err != nil {
		return err
	}
	if _, err := atomicfile.WriteIfChanged(filepath.Join(dir, "ca.crt"), ca, 0o644); err != nil {
		return err
	}
	kc, err := os.ReadFile(kubeletConf)
	if errors.Is(err, os.ErrNotExist) {
		cert := filepath.Join(cfg.Dir, "kubelet", "pki", "kubelet-client-current.pem")
		kc = []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster: {server: "https://%[2]s", certificate-authority: %[3]q}
users:
- name: node
  user: {client-certificate: %[4]q, client-key: %[4]q}
contexts:
- name: node
  context: {cluster: %[1]s, user: node}
current-context: node
`, cfg.ClusterName, LBAddress, filepath.Join(dir, "ca.crt"), cert))
	} else if err != nil {
		return err
	}
	_, err = atomicfile.WriteIfChanged(filepath.Join(dir, "kubeconfig"), kc, 0o600)
	return err
}

// ensureLB runs the node's balancer and waits until it accepts.
func ensureLB(ctx context.Context, engine containers.Engine, cfg Config, rel *images.Release, servers []string, kubeletConf string, timeout time.Duration, emit func(Event)) error {
	if err := writeLBFiles(cfg, kubeletConf); err != nil {
		return fmt.Errorf("the apiserver balancer's files: %w", err)
	}
	spec, err := lbSpec(cfg, rel, servers)
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
