package host

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dk8s/dk8s/pkg/mirror"
)

// The pod runtime dk8s runs: a containerd of its own, with its CRI plugin on,
// beside (never instead of) the one Docker uses, so that neither Docker's
// nor any other containerd's configuration is touched.
const (
	// RuntimeState is the runtime's state directory.
	RuntimeState = "/run/dk8s/containerd"
	// RuntimeSocket is where the runtime answers, kubelet and ctr alike.
	RuntimeSocket = RuntimeState + "/containerd.sock"
)

// cniBinDirs are where distributions put the CNI plugins.
var cniBinDirs = []string{"/usr/lib/cni", "/opt/cni/bin", "/usr/libexec/cni"}

// Tools are the host's runtime binaries and CNI plugins a node runs with.
type Tools struct {
	Containerd string // the runtime
	Ctr        string // its client, for images and pods
	CNIBin     string // the directory of the CNI plugins
}

// FindTools finds the host's containerd, ctr and CNI plugins, or says what
// to install.
func FindTools() (Tools, error) {
	var t Tools
	var err error
	if t.Containerd, err = exec.LookPath("containerd"); err != nil {
		return Tools{}, fmt.Errorf("no containerd on this host: pods need a CRI runtime; install it ('apt-get install containerd', or your distribution's containerd package)")
	}
	if t.Ctr, err = exec.LookPath("ctr"); err != nil {
		return Tools{}, fmt.Errorf("containerd's ctr tool is missing: reinstall the containerd package")
	}
	if _, err = exec.LookPath("ip"); err != nil {
		return Tools{}, fmt.Errorf("no ip command on this host: the node keeps its service range local with it; install iproute2 ('apt-get install iproute2')")
	}
	for _, d := range cniBinDirs {
		if _, err := os.Stat(filepath.Join(d, "bridge")); err == nil {
			t.CNIBin = d
			return t, nil
		}
	}
	return Tools{}, fmt.Errorf("no CNI plugins (bridge, host-local, loopback, portmap) in %s: install them ('apt-get install containernetworking-plugins')", strings.Join(cniBinDirs, ", "))
}

// RuntimeConfig renders containerd's configuration for the cluster kept in
// dir: CRI on, the lock's pause image as the sandbox image (so the image
// the runtime needs is the one dk8s pulled), dk8s's CNI directory, and
// registry hosts under dir so that pods' registry.k8s.io and docker.io
// images resolve through the mirrors.
func RuntimeConfig(dir, pauseImage, cniBin string, systemdCgroup, restrictOOM bool) string {
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
`, filepath.Join(dir, "containerd", "root"), RuntimeState, RuntimeSocket, pauseImage, restrictOOM, systemdCgroup,
		cniBin, filepath.Join(dir, "cni"), filepath.Join(dir, "containerd", "certs.d"))
}

// CNIConfig is a bridge with host-local addresses from the node's share of
// the pod range, the plainest network a single node needs. The firewall
// plugin accepts the pods' traffic in the FORWARD chain: Docker sets that
// chain's policy to DROP, which with br_netfilter also drops traffic between
// two pods on the bridge (DNS to CoreDNS among it).
func CNIConfig(n FlannelNetwork) string {
	return fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "dk8s",
  "plugins": [
    {"type": "bridge", "bridge": "dk8s0", "isGateway": true, "isDefaultGateway": true, "ipMasq": %t, "hairpinMode": true, "mtu": %d,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]]}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "firewall"}
  ]
}
`, !n.IPMasq, n.MTU, n.Subnet)
}

// FlannelSubnetFile is where flanneld writes the node's share of the pod
// network once it has its lease: what flannel's own CNI plugin reads.
const FlannelSubnetFile = "/run/flannel/subnet.env"

// FlannelNetwork is what flanneld wrote in FlannelSubnetFile.
type FlannelNetwork struct {
	Network string // the whole pod range
	Subnet  string // this node's, as a network (10.244.1.0/24)
	MTU     int    // the overlay's: the link's less the VXLAN header
	IPMasq  bool   // flanneld masquerades traffic leaving the pod range
}

// ReadFlannelSubnet reads FlannelSubnetFile (at path): an error wrapping
// os.ErrNotExist until flanneld has written it.
func ReadFlannelSubnet(path string) (FlannelNetwork, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return FlannelNetwork{}, err
	}
	var n FlannelNetwork
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch k {
		case "FLANNEL_NETWORK":
			n.Network = v
		case "FLANNEL_SUBNET":
			// flanneld writes the bridge's address (10.244.1.1/24); the
			// IPAM range is its network.
			if _, ipn, err := net.ParseCIDR(v); err == nil {
				n.Subnet = ipn.String()
			}
		case "FLANNEL_MTU":
			n.MTU, _ = strconv.Atoi(v)
		case "FLANNEL_IPMASQ":
			n.IPMasq = v == "true"
		}
	}
	if n.Subnet == "" || n.MTU <= 0 {
		return FlannelNetwork{}, fmt.Errorf("%s holds no FLANNEL_SUBNET and FLANNEL_MTU: %q", path, data)
	}
	return n, nil
}

// NodePodSubnet is the first /24 of the pod range: the controller-manager
// gives the first node exactly that.
func NodePodSubnet(podCIDR string) (string, error) {
	_, n, err := net.ParseCIDR(podCIDR)
	if err != nil || n.IP.To4() == nil {
		return "", fmt.Errorf("pod range %q must be an IPv4 CIDR", podCIDR)
	}
	if ones, _ := n.Mask.Size(); ones > 24 {
		return "", fmt.Errorf("pod range %q must be /24 or larger", podCIDR)
	}
	return fmt.Sprintf("%s/24", n.IP.To4()), nil
}

// PlainHTTP tells whether a mirror at host (HOST[:PORT]) is reached over
// plain HTTP, as Docker reaches it: a loopback address, or one Docker was
// told is insecure (insecure, Docker's --insecure-registry CIDRs and
// names), so the node's containerd pulls pods' images from the mirrors
// 'dk8s pull' used.
func PlainHTTP(host string, insecure []string) bool {
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		h = host
	}
	ip := net.ParseIP(h)
	if h == "localhost" || (ip != nil && ip.IsLoopback()) {
		return true
	}
	for _, entry := range insecure {
		if entry == host {
			return true
		}
		if _, n, err := net.ParseCIDR(entry); err == nil && ip != nil && n.Contains(ip) {
			return true
		}
	}
	return false
}

// HostsToml points registry (registry.k8s.io or docker.io) at the mirrors
// that serve it, in order, for pods' images: a mirror with a path through
// containerd's override_path. containerd keeps an image's whole path below
// a mirror's, so a flat mirror is left out for docker.io, whose names have
// two elements at least (flannel/flannel) where a flat mirror keeps one.
func HostsToml(registry string, mirrors []mirror.Mirror, insecure []string) string {
	server := "https://" + registry
	if registry == mirror.DockerHub {
		server = "https://registry-1.docker.io" // docker.io is only a name
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by dk8s: pods' %s images through the mirrors.\nserver = %q\n", registry, server)
	for _, m := range mirrors {
		prefix := m.PrefixFor(registry)
		if prefix == "" || prefix == registry || (m.Layout == mirror.Flat && registry == mirror.DockerHub) {
			continue
		}
		host, path, _ := strings.Cut(prefix, "/")
		scheme := "https"
		if PlainHTTP(host, insecure) {
			scheme = "http"
		}
		if m.Layout == mirror.Flat || path != "" {
			fmt.Fprintf(&b, "\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n", scheme+"://"+host+"/v2/"+path)
			continue
		}
		fmt.Fprintf(&b, "\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", scheme+"://"+host)
	}
	return b.String()
}
