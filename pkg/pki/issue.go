package pki

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
	"time"

	"github.com/dk8s/dk8s/internal/atomicfile"
)

// serviceAccount names the key pair (sa.key, sa.pub) that signs and checks
// service-account tokens: a bare key pair, no certificate.
const serviceAccount = "sa"

// issue signs spec's certificate, valid from now, with the key it already
// has (a new one if none): a CA signs itself, anything else is signed by
// its CA, which must be in the PKI already.
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
		IPAddresses:  append(append([]net.IP(nil), spec.IPs...), spec.ExtraIPs...),
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
	return atomicfile.Write(p.Path(spec.Name, ".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// ensureServiceAccount makes the service-account key pair unless its
// private key is there, and tells whether it made it.
func (p *PKI) ensureServiceAccount() (bool, error) {
	if _, err := os.Stat(p.Path(serviceAccount, ".key")); !errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	key, err := newKey()
	if err != nil {
		return false, err
	}
	if err := p.writeKey(serviceAccount, key); err != nil {
		return false, err
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return false, err
	}
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if err := atomicfile.Write(p.Path(serviceAccount, ".pub"), pub, 0o644); err != nil {
		return false, err
	}
	return true, nil
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

// writeKey writes key 0600: readable by root alone.
func (p *PKI) writeKey(name string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return atomicfile.Write(p.Path(name, ".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}
