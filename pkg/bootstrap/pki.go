package bootstrap

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"
)

// Validity of what the PKI issues, as kubeadm sets them: CAs for ten years,
// the rest for one, renewed by `dk8s certs renew` with the same CAs.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	CertValidity = 365 * 24 * time.Hour
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

// CertSpec describes one certificate the PKI issues.
type CertSpec struct {
	// Name is the file name (without .crt/.key) under the PKI directory.
	Name string
	// CA is the Name of the CA that signs it; "" for a self-signed CA.
	CA           string
	CommonName   string
	Organization []string
	DNSNames     []string
	IPs          []net.IP
	Usages       []x509.ExtKeyUsage
}

// IsCA tells whether the spec is a certificate authority.
func (s CertSpec) IsCA() bool { return s.CA == "" }

// Specs lists every certificate of a dk8s control plane, CAs first.
func Specs(cfg PKIConfig) []CertSpec {
	domain := cfg.DNSDomain
	if domain == "" {
		domain = "cluster.local"
	}
	local := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	hostIPs := append(append([]net.IP{}, local...), cfg.Addresses...)
	server := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	return []CertSpec{
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

// PKI is a directory of certificates and keys, owned by root, with every
// private key readable by root alone.
type PKI struct {
	Dir string
}

// EnsurePKI makes every certificate of Specs(cfg) that dir lacks, and the
// service-account key pair, and keeps every one that is there: a rerun
// never replaces a CA or a key that a running cluster trusts. It returns
// the names it made.
func EnsurePKI(dir string, cfg PKIConfig) (*PKI, []string, error) {
	if cfg.NodeName == "" || cfg.ServiceIP == nil {
		return nil, nil, errors.New("the PKI needs a node name and a service IP")
	}
	p := &PKI{Dir: dir}
	var made []string
	for _, spec := range Specs(cfg) {
		if p.exists(spec.Name) {
			if spec.IsCA() || p.namesAll(spec) {
				continue
			}
			// The cluster's names changed (a new address, a node name
			// given): the certificate is issued again for them, with its key.
		}
		if err := p.issue(spec, time.Now()); err != nil {
			return nil, made, fmt.Errorf("making %s: %w", spec.Name, err)
		}
		made = append(made, spec.Name)
	}
	if _, err := os.Stat(filepath.Join(dir, "sa.key")); errors.Is(err, os.ErrNotExist) {
		key, err := newKey()
		if err != nil {
			return nil, made, err
		}
		if err := p.writeKey("sa", key); err != nil {
			return nil, made, err
		}
		der, err := x509.MarshalPKIXPublicKey(key.Public())
		if err != nil {
			return nil, made, err
		}
		if err := writeFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
			return nil, made, err
		}
		made = append(made, "sa")
	}
	return p, made, nil
}

// Path returns the file of name with ext (".crt" or ".key").
func (p *PKI) Path(name, ext string) string { return filepath.Join(p.Dir, name+ext) }

func (p *PKI) exists(name string) bool {
	_, errC := os.Stat(p.Path(name, ".crt"))
	_, errK := os.Stat(p.Path(name, ".key"))
	return errC == nil && errK == nil
}

// namesAll tells whether the certificate of spec names every DNS name and
// address the spec asks for. More names are accepted: an address the host
// no longer has is harmless, and dropping it would reissue for nothing.
func (p *PKI) namesAll(spec CertSpec) bool {
	c, err := p.Cert(spec.Name)
	if err != nil {
		return false
	}
	for _, want := range spec.DNSNames {
		if !slices.Contains(c.DNSNames, want) {
			return false
		}
	}
	for _, want := range spec.IPs {
		if !slices.ContainsFunc(c.IPAddresses, want.Equal) {
			return false
		}
	}
	return c.Subject.CommonName == spec.CommonName
}

// Renew re-issues every certificate that is not a CA, with the same CA and
// a new validity, keeping its key so that nothing that pinned it breaks.
func (p *PKI) Renew(cfg PKIConfig, now time.Time) ([]string, error) {
	var renewed []string
	for _, spec := range Specs(cfg) {
		if spec.IsCA() {
			continue
		}
		if err := p.issue(spec, now); err != nil {
			return renewed, fmt.Errorf("renewing %s: %w", spec.Name, err)
		}
		renewed = append(renewed, spec.Name)
	}
	return renewed, nil
}

func (p *PKI) issue(spec CertSpec, now time.Time) error {
	key, err := p.loadKey(spec.Name)
	if errors.Is(err, os.ErrNotExist) {
		key, err = newKey()
	}
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: spec.CommonName, Organization: spec.Organization},
		NotBefore:    now.Add(-5 * time.Minute).UTC(),
		DNSNames:     spec.DNSNames,
		IPAddresses:  spec.IPs,
		ExtKeyUsage:  spec.Usages,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	signer, parent := crypto.Signer(key), tmpl
	if spec.IsCA() {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		tmpl.NotAfter = now.Add(CAValidity).UTC()
	} else {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
		tmpl.NotAfter = now.Add(CertValidity).UTC()
		caCert, err := p.Cert(spec.CA)
		if err != nil {
			return err
		}
		caKey, err := p.loadKey(spec.CA)
		if err != nil {
			return err
		}
		signer, parent = caKey, caCert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return err
	}
	if err := p.writeKey(spec.Name, key); err != nil {
		return err
	}
	return writeFile(p.Path(spec.Name, ".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// Cert reads the certificate of name.
func (p *PKI) Cert(name string) (*x509.Certificate, error) {
	data, err := os.ReadFile(p.Path(name, ".crt"))
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s is not a PEM certificate", p.Path(name, ".crt"))
	}
	return x509.ParseCertificate(block.Bytes)
}

// Expiry is one certificate's name and end of validity.
type Expiry struct {
	Name     string    `json:"name"`
	CA       bool      `json:"ca"`
	NotAfter time.Time `json:"notAfter"`
}

// Expiries lists every certificate in the PKI with its expiry, soonest
// first.
func (p *PKI) Expiries(cfg PKIConfig) ([]Expiry, error) {
	var out []Expiry
	for _, spec := range Specs(cfg) {
		c, err := p.Cert(spec.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, Expiry{Name: spec.Name, CA: spec.IsCA(), NotAfter: c.NotAfter})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].NotAfter.Before(out[j].NotAfter) })
	return out, nil
}

func newKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func (p *PKI) loadKey(name string) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(p.Path(name, ".key"))
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s is not a PEM key", p.Path(name, ".key"))
	}
	return x509.ParseECPrivateKey(block.Bytes)
}

func (p *PKI) writeKey(name string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writeFile(p.Path(name, ".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

// writeFile writes data through a temporary file in the same directory
// (made 0700), so a crash never leaves half a key, and sets mode even on a
// file that existed with another.
func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// writeIfChanged writes data unless path holds it already.
func writeIfChanged(path string, data []byte, mode os.FileMode) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == string(data) {
		return nil
	}
	return writeFile(path, data, mode)
}
