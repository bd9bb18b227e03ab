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

// DefaultConfig is a single-node control plane on this host: its name, its
// address on the default route, the usual service and pod ranges.
func DefaultConfig() (Config, error) {
	host, err := os.Hostname()
	if err != nil {
		return Config{}, fmt.Errorf("reading the host name: %w", err)
	}
	addr, err := DefaultAddress()
	if err != nil {
		return Config{}, err
	}
	return Config{
		ClusterName:      "dk8s",
		Dir:              DefaultDir,
		NodeName:         strings.ToLower(host),
		AdvertiseAddress: addr,
		ServiceCIDR:      "10.96.0.0/12",
		PodCIDR:          "10.244.0.0/16",
	}, nil
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

// PKIConfig is what the certificates of this configuration must name.
func (c Config) PKIConfig() (PKIConfig, error) {
	svc, err := c.ServiceIP()
	if err != nil {
		return PKIConfig{}, err
	}
	addrs := HostAddresses()
	found := false
	for _, a := range addrs {
		found = found || a.Equal(c.AdvertiseAddress)
	}
	if !found {
		addrs = append(addrs, c.AdvertiseAddress)
	}
	return PKIConfig{NodeName: c.NodeName, Addresses: addrs, ServiceIP: svc}, nil
}

// AdminKubeconfig is the path of the cluster admin's kubeconfig.
func (c Config) AdminKubeconfig() string { return filepath.Join(c.Dir, "admin.conf") }

// APIServerURL is where the components and the kubeconfigs reach the
// apiserver: the node's advertised address.
func (c Config) APIServerURL() string {
	return "https://" + net.JoinHostPort(c.AdvertiseAddress.String(), "6443")
}
