package bootstrap

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/dk8s/dk8s/internal/atomicfile"
	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/mirror"
)

// The pod runtime dk8s runs: a containerd of its own, with its CRI plugin on,
// beside (never instead of) the one Docker uses, so that neither Docker's
// nor any other containerd's configuration is touched.
const (
	runtimeState  = "/run/dk8s/containerd"
	RuntimeSocket = runtimeState + "/containerd.sock"
)

// cniBinDirs are where distributions put the CNI plugins.
var cniBinDirs = []string{"/usr/lib/cni", "/opt/cni/bin", "/usr/libexec/cni"}

// hostTools finds the host's containerd, ctr and CNI plugins, or says what
// to install.
func hostTools() (containerd, ctr, cniBin string, err error) {
	if containerd, err = exec.LookPath("containerd"); err != nil {
		return "", "", "", fmt.Errorf("no containerd on this host: pods need a CRI runtime; install it ('apt-get install containerd', or your distribution's containerd package)")
	}
	if ctr, err = exec.LookPath("ctr"); err != nil {
		return "", "", "", fmt.Errorf("containerd's ctr tool is missing: reinstall the containerd package")
	}
	for _, d := range cniBinDirs {
		if _, err := os.Stat(filepath.Join(d, "bridge")); err == nil {
			return containerd, ctr, d, nil
		}
	}
	return "", "", "", fmt.Errorf("no CNI plugins (bridge, host-local, loopback, portmap) in %s: install them ('apt-get install containernetworking-plugins')", strings.Join(cniBinDirs, ", "))
}

// runtimeConfig renders containerd's configuration: CRI on, the lock's pause
// image as the sandbox image (so the image the runtime needs is the one dk8s
// pulled), dk8s's CNI directory, and registry hosts under dir so that pods'
// registry.k8s.io images resolve through the mirrors.
func runtimeConfig(cfg Config, pauseImage, cniBin string, systemdCgroup, restrictOOM bool) string {
	d := cfg.Dir
	return fmt.Sprintf(`# Written by dk8s: the containerd that runs this node's pods.
version = 2
root = %q
state = %q

[grpc]
  address = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = %t
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = %t
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %q
`, filepath.Join(d, "containerd", "root"), runtimeState, RuntimeSocket, pauseImage, restrictOOM, systemdCgroup,
		cniBin, filepath.Join(d, "cni"), filepath.Join(d, "containerd", "certs.d"))
}

// cniConfig is a bridge with host-local addresses from the node's share of
// the pod range, the plainest network a single node needs. The firewall
// plugin accepts the pods' traffic in the FORWARD chain: Docker sets that
// chain's policy to DROP, which with br_netfilter also drops traffic between
// two pods on the bridge (DNS to CoreDNS among it).
func cniConfig(podSubnet string) string {
	return fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "dk8s",
  "plugins": [
    {"type": "bridge", "bridge": "dk8s0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "firewall"}
  ]
}
`, podSubnet)
}

// nodePodSubnet is the first /24 of the pod range: the controller-manager
// gives the first node exactly that.
func nodePodSubnet(podCIDR string) (string, error) {
	_, n, err := net.ParseCIDR(podCIDR)
	if err != nil || n.IP.To4() == nil {
		return "", fmt.Errorf("pod range %q must be an IPv4 CIDR", podCIDR)
	}
	if ones, _ := n.Mask.Size(); ones > 24 {
		return "", fmt.Errorf("pod range %q must be /24 or larger", podCIDR)
	}
	return fmt.Sprintf("%s/24", n.IP.To4()), nil
}

// hostsToml points registry.k8s.io at the mirrors, in order, for pods'
// images: a flat mirror through containerd's override_path.
func hostsToml(mirrors []mirror.Mirror) string {
	var b strings.Builder
	b.WriteString("# Written by dk8s: pods' registry.k8s.io images through the mirrors.\nserver = \"https://registry.k8s.io\"\n")
	for _, m := range mirrors {
		if m.Prefix == mirror.Upstream {
			continue
		}
		scheme := "https"
		if h, _, err := net.SplitHostPort(m.Host()); err == nil && (h == "localhost" || net.ParseIP(h).IsLoopback()) {
			scheme = "http"
		}
		host, path, _ := strings.Cut(m.Prefix, "/")
		if m.Layout == mirror.Flat || path != "" {
			fmt.Fprintf(&b, "\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n", scheme+"://"+host+"/v2/"+path)
			continue
		}
		fmt.Fprintf(&b, "\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", scheme+"://"+host)
	}
	return b.String()
}

// importImages copies images from Docker's store into the runtime's, so
// that the add-ons and the sandbox image need no registry at all. What was
// imported is recorded by Docker image ID in record, so that an image that
// changed under the same name (a re-pull) is imported again.
func importImages(ctx context.Context, engine containers.Engine, ctr, record string, refs []string) (map[string]string, error) {
	done := map[string]string{}
	if data, err := os.ReadFile(record); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if ref, id, ok := strings.Cut(line, " "); ok {
				done[ref] = id
			}
		}
	}
	var todo []string
	ids := map[string]string{}
	for _, ref := range refs {
		img, err := engine.InspectImage(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		ids[ref] = img.ID
		out, _ := exec.CommandContext(ctx, ctr, "--address", RuntimeSocket, "-n", "k8s.io", "images", "ls", "-q", "name=="+ref).Output()
		if done[ref] != img.ID || strings.TrimSpace(string(out)) == "" {
			todo = append(todo, ref)
		}
		done[ref] = img.ID
	}
	if len(todo) == 0 {
		return ids, nil
	}
	rc, err := engine.SaveImages(ctx, todo)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	cmd := exec.CommandContext(ctx, ctr, "--address", RuntimeSocket, "-n", "k8s.io", "images", "import", "-")
	cmd.Stdin = rc
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("loading %s into the pod runtime: %v: %s", strings.Join(todo, ", "), err, out)
	}
	var lines []string
	for _, ref := range sortedKeys(done) {
		lines = append(lines, ref+" "+done[ref])
	}
	return ids, atomicfile.Write(record, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// waitRuntime waits until the runtime answers on its socket.
func waitRuntime(ctx context.Context, ctr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := exec.CommandContext(ctx, ctr, "--address", RuntimeSocket, "version").Run()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the pod runtime did not answer on %s within %s: %w", RuntimeSocket, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}
