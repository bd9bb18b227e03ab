package bootstrap

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dk8s/dk8s/internal/atomicfile"
	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/host"
	"github.com/dk8s/dk8s/pkg/images"
)

// nodeUnits are the host agents' systemd units, used where systemd is init.
func nodeUnits() host.Units { return host.Units{Runner: host.Exec{}, Dir: host.UnitDir} }

// LabelConfigHash carries a hash of the files a host agent reads, so that a
// changed configuration replaces its container (and restarts the agent).
const LabelConfigHash = "io.dk8s.config-hash"

// LabelVersion is the version of the host binary a node container runs.
const LabelVersion = "io.dk8s.version"

// nodeFiles are the files dk8s writes for the node, by path.
type nodeFiles map[string]string

func (f nodeFiles) hash(prefix string) string {
	h := sha256.New()
	for _, p := range sortedKeys(f) {
		if strings.HasPrefix(p, prefix) {
			fmt.Fprintf(h, "%s\n%s\n", p, f[p])
		}
	}
	return fmt.Sprintf("%x", h.Sum(nil))[:16]
}

// nodeTools are the host binaries a node runs, found by findNodeTools.
type nodeTools struct {
	host.Tools
	shim                    string // a static dk8s
	kubelet, kubeletVersion string // the kubelet to install, and its version
}

// findNodeTools finds the runtime, the CNI plugins, a static dk8s and a
// kubelet that fits the control plane, or says what is missing.
func findNodeTools(ctx context.Context, cfg Config, rel *images.Release) (*nodeTools, error) {
	var t nodeTools
	var err error
	if t.Tools, err = host.FindTools(); err != nil {
		return nil, err
	}
	if t.shim = cfg.ShimBinary; t.shim == "" {
		if t.shim, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	if err := host.CheckStatic(t.shim); err != nil {
		return nil, err
	}
	if t.kubelet, t.kubeletVersion, err = host.FindKubelet(ctx, host.Exec{}, cfg.KubeletBinary, cfg.Dir, rel); err != nil {
		return nil, err
	}
	return &t, nil
}

// startNode makes this host a node of the control plane just started.
func startNode(ctx context.Context, engine containers.Engine, cfg Config, rel *images.Release, t *nodeTools, timeout time.Duration, emit func(Event)) error {
	containerdBin, ctr, cniBin, kubeletVersion := t.Containerd, t.Ctr, t.CNIBin, t.kubeletVersion
	shim, err := host.Install(t.shim, filepath.Join(cfg.Dir, "bin", "dk8s"))
	if err != nil {
		return err
	}
	kubelet, err := host.Install(t.kubelet, filepath.Join(cfg.Dir, "bin", "kubelet"))
	if err != nil {
		return err
	}
	pause, _ := rel.Image("pause")
	podSubnet, err := host.NodePodSubnet(cfg.PodCIDR)
	if err != nil {
		return err
	}
	svc, err := cfg.ServiceIP()
	if err != nil {
		return err
	}
	dnsIP := append(net.IP(nil), svc.To4()...)
	dnsIP[3] = 10 // the service range's .10, where kubeadm puts kube-dns
	dns := dnsIP.String()
	systemd := host.SystemdIsInit()
	runtimeConf := filepath.Join(cfg.Dir, "containerd", "config.toml")
	files := nodeFiles{
		runtimeConf: host.RuntimeConfig(cfg.Dir, pause.Name, cniBin, systemd, len(containers.MissingCapabilities()) > 0),
		filepath.Join(cfg.Dir, "cni", "10-dk8s.conflist"): host.CNIConfig(podSubnet),
		filepath.Join(cfg.Dir, "kubelet", "config.yaml"):  host.KubeletConfig(cfg.AdvertiseAddress, dns, filepath.Join(cfg.PKIDir(), "ca.crt"), systemd, host.CgroupV1()),
	}
	if len(cfg.Mirrors) > 0 {
		files[filepath.Join(cfg.Dir, "containerd", "certs.d", "registry.k8s.io", "hosts.toml")] = host.HostsToml(cfg.Mirrors)
	}
	for p, content := range files {
		if _, err := atomicfile.WriteIfChanged(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := host.EnsureSharedRoot(); err != nil {
		return err
	}
	versions := map[string]string{"kubelet": kubeletVersion, "containerd": host.BinaryVersion(ctx, host.Exec{}, containerdBin)}
	runtimeCmd := []string{containerdBin, "--config", runtimeConf}
	specs := nodeSpecs(cfg, pause.Name, shim, files, versions, runtimeCmd,
		[]string{kubelet, "--config=" + filepath.Join(cfg.Dir, "kubelet", "config.yaml"), "--kubeconfig=" + filepath.Join(cfg.Dir, "kubelet.conf"),
			"--root-dir=" + filepath.Join(cfg.Dir, "kubelet"), "--cert-dir=" + filepath.Join(cfg.Dir, "kubelet", "pki"),
			"--hostname-override=" + cfg.NodeName, "--node-ip=" + cfg.AdvertiseAddress.String()})

	if systemd {
		actions, err := nodeUnits().Apply(ctx, []host.Unit{
			{Component: "containerd", Text: host.SystemdUnit("containerd", append([]string{shim, "host-exec", "--root", "/", "--service-cidr", cfg.ServiceCIDR, "--"}, runtimeCmd...), []string{"docker.service"})},
			{Component: "kubelet", Text: host.SystemdUnit("kubelet", specs[1].Args, []string{host.UnitName("containerd")})},
		})
		if err != nil {
			return err
		}
		for _, a := range actions {
			emit(Event{Step: "unit", Message: a})
		}
	} else {
		ens, err := containers.Ensure(ctx, engine, specs[0])
		if err != nil {
			return fmt.Errorf("containerd: %w", err)
		}
		emit(Event{Step: "container", Component: "containerd", Message: specs[0].Name + " " + ens.String()})
	}
	if err := host.WaitRuntime(ctx, host.Exec{}, ctr, timeout); err != nil {
		return &ComponentError{Component: "containerd", Err: err, Logs: lastLogs(engine, specs[0].Name, 15), Hint: "'dk8s logs containerd'"}
	}
	var refs []string
	for _, c := range []string{"pause", "kube-proxy", "coredns"} {
		img, _ := rel.Image(c)
		refs = append(refs, img.Name)
	}
	imageIDs, err := host.ImportImages(ctx, host.Exec{}, engine, ctr, filepath.Join(cfg.Dir, "containerd", "imported"), refs)
	if err != nil {
		return err
	}
	emit(Event{Step: "healthy", Component: "containerd", Message: "containerd (CRI) is up, with the pause, kube-proxy and CoreDNS images", Done: true})

	if !systemd {
		ens, err := containers.Ensure(ctx, engine, specs[1])
		if err != nil {
			return fmt.Errorf("kubelet: %w", err)
		}
		emit(Event{Step: "container", Component: "kubelet", Message: specs[1].Name + " " + ens.String()})
	}
	if err := waitHTTP(ctx, "http://127.0.0.1:10248/healthz", timeout); err != nil {
		return &ComponentError{Component: "kubelet", Err: err, Logs: lastLogs(engine, specs[1].Name, 15), Hint: "'dk8s logs kubelet'"}
	}
	cs, err := clientFor(filepath.Join(cfg.Dir, "super-admin.conf"))
	if err != nil {
		return err
	}
	if err := waitNodeReady(ctx, cs, cfg.NodeName, timeout); err != nil {
		return &ComponentError{Component: "kubelet", Err: err, Logs: lastLogs(engine, specs[1].Name, 15), Hint: "'dk8s logs kubelet'; 'kubectl describe node " + cfg.NodeName + "'"}
	}
	emit(Event{Step: "healthy", Component: "kubelet", Message: "node " + cfg.NodeName + " is Ready", Done: true})
	if err := ensureAddons(ctx, cs, cfg, rel, dns, imageIDs); err != nil {
		return err
	}
	if err := waitAddons(ctx, cs, timeout); err != nil {
		return err
	}
	emit(Event{Step: "healthy", Component: "add-ons", Message: "kube-proxy and CoreDNS are running", Done: true})
	return nil
}

// nodeSpecs are the containers that supervise the host agents: each in the
// host's namespaces, with the host's root bound at /host (rshared, so that
// the mounts kubelet makes for pods reach the host), entering it through the
// shim and exec'ing the agent there. The image only carries nothing: the
// pause image of the lock, present on every dk8s host.
func nodeSpecs(cfg Config, image, shim string, files nodeFiles, versions map[string]string, runtimeCmd, kubeletCmd []string) []containers.Spec {
	mk := func(comp string, cmd []string, configPrefix string) containers.Spec {
		entry := []string{host.MountedRoot + shim, "host-exec"}
		if comp == "containerd" {
			entry = append(entry, runtimePrep(cfg)...)
		}
		return containers.Spec{
			Name:       containerName(comp),
			Image:      image,
			Entrypoint: append(entry, "--"),
			Args:       cmd,
			Labels: map[string]string{
				containers.LabelComponent: comp,
				containers.LabelCluster:   cfg.ClusterName,
				containers.LabelDir:       cfg.Dir,
				LabelConfigHash:           files.hash(configPrefix),
				LabelVersion:              versions[comp],
			},
			Mounts:         []containers.Mount{{Source: "/", Target: host.MountedRoot, Propagation: "rshared"}},
			HostNetwork:    true,
			HostNamespaces: true,
			Privileged:     true,
			RestartAlways:  true, // as for the control plane: see Plan
		}.WithHash()
	}
	return []containers.Spec{
		mk("containerd", runtimeCmd, filepath.Join(cfg.Dir, "containerd")),
		mk("kubelet", kubeletCmd, filepath.Join(cfg.Dir, "kubelet")),
	}
}

// runtimePrep are host-exec's flags for the runtime: the service range kept
// on the host before any pod can send to it, and the runtime in a cgroup of
// its own, so that pods outlive a crash or restart of its container (under
// systemd, KillMode=process and Delegate=yes do that).
func runtimePrep(cfg Config) []string {
	return []string{"--service-cidr", cfg.ServiceCIDR, "--cgroup", host.RuntimeCgroup}
}

func waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("not healthy after %s: %w", timeout, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func waitNodeReady(ctx context.Context, cs kubeClient, node string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := "not registered"
	for {
		n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err == nil {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady {
					if c.Status == corev1.ConditionTrue {
						return nil
					}
					last = c.Reason + ": " + c.Message
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not Ready after %s (%s)", node, timeout, last)
		case <-time.After(time.Second):
		}
	}
}
