package pki

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
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
	// ExtraIPs are named too when the certificate is issued, but one
	// missing from a certificate does not reissue it: the host's other
	// addresses come and go (a Docker network, a VPN, an IPv6 privacy
	// address), and reissuing restarts the components that serve it.
	ExtraIPs []net.IP
	Usages   []x509.ExtKeyUsage
}

// IsCA tells whether the spec is a certificate authority.
func (s CertSpec) IsCA() bool { return s.CA == "" }

// PKI is a directory of certificates and keys, owned by root, with every
// private key readable by root alone.
type PKI struct {
	Dir string
}

// Ensure makes every certificate of specs that dir lacks, and the
// service-account key pair (sa.key, sa.pub), and keeps every one that is
// there: a rerun never replaces a CA or a key that a running cluster
// trusts. specs lists each CA before the certificates it signs. It returns
// the names it made.
func Ensure(dir string, specs []CertSpec) (*PKI, []string, error) {
	p := &PKI{Dir: dir}
	var made []string
	for _, spec := range specs {
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
	madeSA, err := p.ensureServiceAccount()
	if err != nil {
		return nil, made, err
	}
	if madeSA {
		made = append(made, serviceAccount)
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

// Renew re-issues every certificate of specs that is not a CA, with the
// same CA and a new validity from now, keeping its key so that nothing that
// pinned it breaks. It returns the names it renewed.
func (p *PKI) Renew(specs []CertSpec, now time.Time) ([]string, error) {
	var renewed []string
	for _, spec := range specs {
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

// Expiries lists every certificate of specs with its expiry, soonest
// first. Only the specs' names are read: a list made without the cluster's
// addresses will do.
func (p *PKI) Expiries(specs []CertSpec) ([]Expiry, error) {
	var out []Expiry
	for _, spec := range specs {
		c, err := p.Cert(spec.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, Expiry{Name: spec.Name, CA: spec.IsCA(), NotAfter: c.NotAfter})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].NotAfter.Before(out[j].NotAfter) })
	return out, nil
}

// Check tells whether the certificate of spec is what spec asks for at now:
// a CA that signs certificates, or a leaf that is no CA and verifies
// against its CA for its usages.
func (p *PKI) Check(spec CertSpec, now time.Time) error {
	c, err := p.Cert(spec.Name)
	if err != nil {
		return err
	}
	if spec.IsCA() {
		if !c.IsCA || c.KeyUsage&x509.KeyUsageCertSign == 0 {
			return fmt.Errorf("%s is not a CA that signs certificates", spec.Name)
		}
		return nil
	}
	if c.IsCA {
		return fmt.Errorf("%s must not be a CA", spec.Name)
	}
	ca, err := p.Cert(spec.CA)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: spec.Usages, CurrentTime: now}); err != nil {
		return fmt.Errorf("%s does not verify against %s for %v: %w", spec.Name, spec.CA, spec.Usages, err)
	}
	return nil
}
