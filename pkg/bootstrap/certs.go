package bootstrap

import (
	"crypto/x509"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"time"

	"github.com/dk8s/dk8s/internal/atomicfile"
	"github.com/dk8s/dk8s/pkg/pki"
)

// PKIConfig is what the certificates must name.
type PKIConfig struct {
	// NodeName is the node's name: the kubelet's identity
	// (system:node:NAME) and a SAN of the apiserver's certificate.
	NodeName string
	// Addresses are the cluster's own addresses (the advertise address):
	// SANs of the apiserver's and etcd's serving certificates besides
	// loopback, reissued for when one is missing.
	Addresses []net.IP
	// OtherAddresses are the host's other addresses, named too when those
	// certificates are issued, but never a reason to reissue them.
	OtherAddresses []net.IP
	// ServiceIP is the first address of the service range: the
	// in-cluster "kubernetes" service.
	ServiceIP net.IP
	// DNSDomain is the cluster's DNS domain, cluster.local by default.
	DNSDomain string
	// Endpoint is the host of the control-plane endpoint the user brings
	// (a VIP, a DNS name of a balancer), named by the apiserver's
	// certificate; "" for none.
	Endpoint string
}

// clientAuth is the usage of a client certificate.
var clientAuth = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}

// serverAuth is the usage of a serving certificate.
var serverAuth = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}

// clusterCerts are the cluster's own: its CA, and the admin identities of
// admin.conf (AdminGroup, bound to cluster-admin) and super-admin.conf
// (system:masters, kept for emergencies).
func clusterCerts(PKIConfig) []pki.CertSpec {
	return []pki.CertSpec{
		{Name: "ca", CommonName: "dk8s-ca"},
		{Name: "admin", CA: "ca", CommonName: "kubernetes-admin", Organization: []string{AdminGroup}, Usages: clientAuth},
		{Name: "super-admin", CA: "ca", CommonName: "kubernetes-super-admin", Organization: []string{"system:masters"}, Usages: clientAuth},
	}
}

// Specs lists every certificate of a dk8s cluster, the cluster's own and
// each component's, CAs first (a certificate is signed by a CA made
// before it).
func Specs(cfg PKIConfig) []pki.CertSpec {
	all := clusterCerts(cfg)
	for _, c := range Components() {
		if c.Certs != nil {
			all = append(all, c.Certs(cfg)...)
		}
	}
	slices.SortStableFunc(all, func(a, b pki.CertSpec) int {
		switch {
		case a.IsCA() && !b.IsCA():
			return -1
		case b.IsCA() && !a.IsCA():
			return 1
		}
		return 0
	})
	return all
}

// Kubeconfigs are the client identities dk8s writes beside its PKI: the
// admin's and each component's, each carrying the certificate of the same
// name and trusting the cluster CA.
func Kubeconfigs() []pki.Kubeconfig {
	kcs := []pki.Kubeconfig{
		{File: "admin.conf", Cert: "admin", CA: "ca"},
		{File: "super-admin.conf", Cert: "super-admin", CA: "ca"},
	}
	for _, c := range Components() {
		kcs = append(kcs, c.Kubeconfigs...)
	}
	return kcs
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
	if err := pki.WriteKubeconfigs(p, cfg.Dir, cfg.ClusterName, cfg.APIServerURL(), Kubeconfigs()); err != nil {
		return err
	}
	// The apiserver's, towards the csr-approver's audit receiver.
	if err := pki.WriteKubeconfigs(p, cfg.Dir, cfg.ClusterName, "https://"+approverAudit,
		[]pki.Kubeconfig{{File: "audit-webhook.conf", Cert: "apiserver-audit-client", CA: "ca"}}); err != nil {
		return err
	}
	_, err := atomicfile.WriteIfChanged(filepath.Join(cfg.Dir, auditPolicyFile), []byte(auditPolicy), 0o600)
	return err
}

// auditPolicyFile is the apiserver's audit policy, in the cluster
// directory.
const auditPolicyFile = "audit-policy.yaml"

// auditPolicy has the apiserver tell the csr-approver of every certificate
// request made, with the address it came from, and of nothing else.
const auditPolicy = `# Written by dk8s: the csr-approver approves a kubelet's serving
# certificate only for the address its request came from, which the
# apiserver's audit webhook tells it.
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
- level: RequestResponse
  verbs: [create]
  resources: [{group: certificates.k8s.io, resources: [certificatesigningrequests]}]
- level: None
`
