package bootstrap

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// DefaultDir is where dk8s keeps a cluster's PKI, kubeconfigs and etcd data
// on the host: outside every container, so that removing them loses nothing.
const DefaultDir = "/var/lib/dk8s"

// The address ranges a cluster gets unless told otherwise: kubeadm's.
const (
	DefaultServiceCIDR = "10.96.0.0/12"
	DefaultPodCIDR     = "10.244.0.0/16"
)

// DefaultConfig is a single-node cluster kept in DefaultDir. It looks
// nothing up: what is not given is found by Resolve, and only when a
// command needs it (ps, stop and reset need neither the host name nor a
// route).
func DefaultConfig() Config {
	return Config{ClusterName: "dk8s", Dir: DefaultDir}
}

// DefaultAddress is the IPv4 address of the interface that holds the
// default route, read from /proc/net/route: no packet is sent to find it.
func DefaultAddress() (net.IP, error) {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return nil, fmt.Errorf("finding the default route: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[1] != "00000000" {
			continue
		}
		iface, err := net.InterfaceByName(fields[0])
		if err != nil {
			continue
		}
		addrs, _ := iface.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				return ipn.IP.To4(), nil
			}
		}
	}
	return nil, fmt.Errorf("this host has no default route with an IPv4 address: pass --advertise-address")
}

// HostAddresses lists the host's global unicast addresses, for the serving
// certificates' SANs.
func HostAddresses() []net.IP {
	var out []net.IP
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.IsGlobalUnicast() {
			out = append(out, ipn.IP)
		}
	}
	return out
}

// ServiceIP is the first address of the service range: the "kubernetes"
// service's.
func (c Config) ServiceIP() (net.IP, error) {
	_, n, err := net.ParseCIDR(c.ServiceCIDR)
	if err != nil {
		return nil, fmt.Errorf("service range %q: %w", c.ServiceCIDR, err)
	}
	ip := append(net.IP(nil), n.IP.To4()...)
	if ip == nil {
		return nil, fmt.Errorf("service range %q must be IPv4", c.ServiceCIDR)
	}
	ip[3]++
	return ip, nil
}

// PKIDir is where the cluster's certificates live.
func (c Config) PKIDir() string { return filepath.Join(c.Dir, "pki") }

// PKIConfig is what the certificates of this configuration must name: the
// node name, the advertise address and the host's other addresses, but not
// the addresses of the cluster's own ranges (the pod bridge's appears once
// pods run, and would make every rerun reissue the certificates).
func (c Config) PKIConfig() (PKIConfig, error) {
	svc, err := c.ServiceIP()
	if err != nil {
		return PKIConfig{}, err
	}
	if c.AdvertiseAddress == nil {
		return PKIConfig{}, fmt.Errorf("no advertise address: pass --advertise-address")
	}
	var ranges []*net.IPNet
	for _, cidr := range []string{c.ServiceCIDR, c.PodCIDR} {
		if _, n, err := net.ParseCIDR(cidr); err == nil {
			ranges = append(ranges, n)
		}
	}
	var others []net.IP
	for _, a := range HostAddresses() {
		keep := !a.Equal(c.AdvertiseAddress)
		for _, n := range ranges {
			keep = keep && !n.Contains(a)
		}
		if keep {
			others = append(others, a)
		}
	}
	return PKIConfig{NodeName: c.NodeName, Addresses: []net.IP{c.AdvertiseAddress}, OtherAddresses: others, ServiceIP: svc, Endpoint: c.endpointHost()}, nil
}

// endpointHost is the host of the control-plane endpoint (HOST:PORT), ""
// for none.
func (c Config) endpointHost() string {
	h, _, _ := net.SplitHostPort(c.ControlPlaneEndpoint)
	return h
}

// AdminKubeconfig is the path of the cluster admin's kubeconfig.
func (c Config) AdminKubeconfig() string { return filepath.Join(c.Dir, "admin.conf") }

// ClusterURL is where the cluster is reached from other machines: the
// control-plane endpoint where one was given, else this control plane.
func (c Config) ClusterURL() string {
	if c.ControlPlaneEndpoint != "" {
		return "https://" + c.ControlPlaneEndpoint
	}
	return c.APIServerURL()
}

// APIServerURL is where the components and the kubeconfigs reach the
// apiserver: the node's advertised address.
func (c Config) APIServerURL() string {
	return "https://" + net.JoinHostPort(c.AdvertiseAddress.String(), "6443")
}
