package bootstrap

import (
	"crypto/x509"
	"errors"
	"net"
	"time"

	"github.com/dk8s/dk8s/pkg/pki"
)

// PKIConfig is what the certificates must name.
type PKIConfig struct {
	// NodeName is the node's name: the kubelet's identity
	// (system:node:NAME) and a SAN of the apiserver's certificate.
	NodeName string
	// Addresses are the host's addresses, all of them SANs of the
	// apiserver's and etcd's serving certificates besides 127.0.0.1.
	Addresses []net.IP
	// ServiceIP is the first address of the service range: the
	// in-cluster "kubernetes" service.
	ServiceIP net.IP
	// DNSDomain is the cluster's DNS domain, cluster.local by default.
	DNSDomain string
}

// Specs lists every certificate of a dk8s control plane, CAs first.
func Specs(cfg PKIConfig) []pki.CertSpec {
	domain := cfg.DNSDomain
	if domain == "" {
		domain = "cluster.local"
	}
	local := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	hostIPs := append(append([]net.IP{}, local...), cfg.Addresses...)
	server := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	return []pki.CertSpec{
		{Name: "ca", CommonName: "dk8s-ca"},
		{Name: "etcd/ca", CommonName: "dk8s-etcd-ca"},
		{Name: "front-proxy-ca", CommonName: "dk8s-front-proxy-ca"},
		{Name: "apiserver", CA: "ca", CommonName: "kube-apiserver",
			DNSNames: []string{cfg.NodeName, "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + domain},
			IPs:      append(append([]net.IP{}, hostIPs...), cfg.ServiceIP), Usages: server},
		{Name: "apiserver-kubelet-client", CA: "ca", CommonName: "kube-apiserver-kubelet-client", Organization: []string{AdminGroup}, Usages: client},
		{Name: "apiserver-etcd-client", CA: "etcd/ca", CommonName: "kube-apiserver-etcd-client", Usages: client},
		{Name: "front-proxy-client", CA: "front-proxy-ca", CommonName: "front-proxy-client", Usages: client},
		{Name: "etcd/server", CA: "etcd/ca", CommonName: cfg.NodeName, DNSNames: []string{cfg.NodeName, "localhost"}, IPs: hostIPs, Usages: both},
		{Name: "etcd/peer", CA: "etcd/ca", CommonName: cfg.NodeName, DNSNames: []string{cfg.NodeName, "localhost"}, IPs: hostIPs, Usages: both},
		{Name: "etcd/healthcheck-client", CA: "etcd/ca", CommonName: "kube-etcd-healthcheck-client", Usages: client},
		{Name: "admin", CA: "ca", CommonName: "kubernetes-admin", Organization: []string{AdminGroup}, Usages: client},
		{Name: "super-admin", CA: "ca", CommonName: "kubernetes-super-admin", Organization: []string{"system:masters"}, Usages: client},
		{Name: "controller-manager", CA: "ca", CommonName: "system:kube-controller-manager", Usages: client},
		{Name: "scheduler", CA: "ca", CommonName: "system:kube-scheduler", Usages: client},
		{Name: "kubelet", CA: "ca", CommonName: "system:node:" + cfg.NodeName, Organization: []string{"system:nodes"}, Usages: client},
	}
}

// Kubeconfigs are the client identities dk8s writes beside its PKI, as
// NAME.conf, each carrying the certificate of the same name and trusting
// the cluster CA.
var Kubeconfigs = []pki.Kubeconfig{
	{File: "admin.conf", Cert: "admin", CA: "ca"},
	{File: "super-admin.conf", Cert: "super-admin", CA: "ca"},
	{File: "controller-manager.conf", Cert: "controller-manager", CA: "ca"},
	{File: "scheduler.conf", Cert: "scheduler", CA: "ca"},
	{File: "kubelet.conf", Cert: "kubelet", CA: "ca"},
}

// EnsurePKI makes every certificate of Specs(cfg) that dir lacks, and the
// service-account key pair, and keeps every one that is there (pki.Ensure).
// It returns the names it made.
func EnsurePKI(dir string, cfg PKIConfig) (*pki.PKI, []string, error) {
	if cfg.NodeName == "" || cfg.ServiceIP == nil {
		return nil, nil, errors.New("the PKI needs a node name and a service IP")
	}
	return pki.Ensure(dir, Specs(cfg))
}

// CertExpiries lists every certificate of cfg's cluster with its expiry,
// soonest first. It needs only the directory: no address.
func CertExpiries(cfg Config) ([]pki.Expiry, error) {
	return (&pki.PKI{Dir: cfg.PKIDir()}).Expiries(Specs(PKIConfig{}))
}

// RenewCerts re-issues every certificate of cfg's cluster but the CAs, for
// the names cfg gives and keeping their keys, and rewrites the kubeconfigs
// that embed them. It returns the names it renewed.
func RenewCerts(cfg Config, now time.Time) ([]string, error) {
	pcfg, err := cfg.PKIConfig()
	if err != nil {
		return nil, err
	}
	p := &pki.PKI{Dir: cfg.PKIDir()}
	renewed, err := p.Renew(Specs(pcfg), now)
	if err != nil {
		return nil, err
	}
	return renewed, writeKubeconfigs(p, cfg)
}

// writeKubeconfigs writes Kubeconfigs into cfg's directory, pointing at
// cfg's apiserver.
func writeKubeconfigs(p *pki.PKI, cfg Config) error {
	return pki.WriteKubeconfigs(p, cfg.Dir, cfg.ClusterName, cfg.APIServerURL(), Kubeconfigs)
}
