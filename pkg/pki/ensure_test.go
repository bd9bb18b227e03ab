package pki

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A certificate whose names no longer match its spec's is issued again,
// with the same key; one that names all of them is kept, and a CA is never
// reissued.
func TestEnsureReissuesForNewNames(t *testing.T) {
	dir := t.TempDir()
	p, _, err := Ensure(dir, specs)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(p.Path("server", ".key"))
	ca, _ := os.ReadFile(p.Path("ca", ".crt"))

	changed := testSpecs("192.0.2.99")
	changed[0].CommonName = "another-ca"    // a CA is kept whatever its spec says
	changed[3].CommonName = "admin-renamed" // another identity is reissued
	_, made, err := Ensure(dir, changed)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(made, []string{"server", "admin"}) {
		t.Errorf("after the address and a name changed, reissued %v, want [server admin]", made)
	}
	c, _ := p.Cert("server")
	if !slices.ContainsFunc(c.IPAddresses, net.ParseIP("192.0.2.99").Equal) {
		t.Errorf("the server's certificate lacks the new address: %v", c.IPAddresses)
	}
	if k2, _ := os.ReadFile(p.Path("server", ".key")); !bytes.Equal(k2, key) {
		t.Error("reissuing replaced the key")
	}
	if ca2, _ := os.ReadFile(p.Path("ca", ".crt")); !bytes.Equal(ca2, ca) {
		t.Error("a CA was reissued")
	}

	// Fewer names than the certificate has: more are accepted, nothing is
	// made.
	if _, made, err := Ensure(dir, testSpecs("127.0.0.1")[:3]); err != nil || len(made) != 0 {
		t.Errorf("a certificate naming more than its spec was reissued: %v (%v)", made, err)
	}
}

// A certificate that cannot be read is issued again, with its key.
func TestEnsureReissuesAGarbledCertificate(t *testing.T) {
	dir := t.TempDir()
	p, _, err := Ensure(dir, specs)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(p.Path("admin", ".key"))
	if err := os.WriteFile(p.Path("admin", ".crt"), []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Cert("admin"); err == nil || !strings.Contains(err.Error(), "not a PEM certificate") {
		t.Errorf("reading a garbled certificate: %v", err)
	}
	_, made, err := Ensure(dir, specs)
	if err != nil || !slices.Equal(made, []string{"admin"}) {
		t.Fatalf("made %v (%v), want [admin]", made, err)
	}
	if k2, _ := os.ReadFile(p.Path("admin", ".key")); !bytes.Equal(k2, key) {
		t.Error("reissuing replaced the key")
	}
}

func TestEnsureFails(t *testing.T) {
	// A certificate whose CA is neither listed before it nor in the PKI.
	orphan := []CertSpec{{Name: "leaf", CA: "nowhere", CommonName: "leaf", Usages: clientUsage}}
	_, made, err := Ensure(t.TempDir(), orphan)
	if err == nil || !strings.Contains(err.Error(), "making leaf") || len(made) != 0 {
		t.Errorf("a certificate without its CA: made %v, %v", made, err)
	}

	// A key that is not PEM is not replaced: it fails.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.key"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Ensure(dir, specs); err == nil || !strings.Contains(err.Error(), "not a PEM key") {
		t.Errorf("a garbled CA key: %v", err)
	}

	// Nothing can be written below a file.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Ensure(file, specs); err == nil {
		t.Error("a PKI below a file was made")
	}

	// The service-account pair fails as a whole: its public key cannot
	// replace a directory.
	dir = t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sa.pub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Ensure(dir, nil); err == nil {
		t.Error("a service-account public key replaced a directory")
	}
}
