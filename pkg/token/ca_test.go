package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// testCA is a cluster CA made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dk8s-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// serving is an apiserver certificate the CA signs for ips.
func (ca testCA) serving(t *testing.T, ips ...net.IP) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// A CA bundle is trusted whole, so each CA in it must be pinned: one pin
// does not vouch for another CA beside it.
func TestCheckPinnedWantsEveryCAOfTheBundle(t *testing.T) {
	a, b := newCA(t), newCA(t)
	bundle := []*x509.Certificate{a.cert, b.cert}
	if err := checkPinned(bundle, map[string]bool{CAHash(a.cert): true}, "192.0.2.10:6443"); err == nil || !strings.Contains(err.Error(), CAHash(b.cert)) || !strings.Contains(err.Error(), "holds 2 CAs") {
		t.Errorf("a bundle with one CA unpinned should be refused, naming it: %v", err)
	}
	if err := checkPinned(bundle, map[string]bool{CAHash(a.cert): true, CAHash(b.cert): true}, "192.0.2.10:6443"); err != nil {
		t.Errorf("a bundle whose every CA is pinned: %v", err)
	}
	if err := checkPinned(bundle[:1], map[string]bool{CAHash(b.cert): true}, "192.0.2.10:6443"); err == nil || !strings.Contains(err.Error(), "not the one given") {
		t.Errorf("a CA that is not pinned: %v", err)
	}
}
