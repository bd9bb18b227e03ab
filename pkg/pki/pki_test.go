package pki

import (
	"bytes"
	"crypto/x509"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	serverUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	clientUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
)

// testSpecs is a PKI of the shape a cluster has: two CAs (one in a
// subdirectory), a serving certificate with names and addresses, and client
// certificates under each CA.
func testSpecs(addr string) []CertSpec {
	return []CertSpec{
		{Name: "ca", CommonName: "test-ca"},
		{Name: "etcd/ca", CommonName: "test-etcd-ca"},
		{Name: "server", CA: "ca", CommonName: "server", DNSNames: []string{"node-1", "localhost"},
			IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.ParseIP(addr)}, Usages: serverUsage},
		{Name: "admin", CA: "ca", CommonName: "admin", Organization: []string{"admins"}, Usages: clientUsage},
		{Name: "etcd/client", CA: "etcd/ca", CommonName: "etcd-client", Usages: clientUsage},
	}
}

var specs = testSpecs("192.0.2.10")

func TestEnsureChainsAndNames(t *testing.T) {
	p, made, err := Ensure(t.TempDir(), specs)
	if err != nil {
		t.Fatal(err)
	}
	if len(made) != len(specs)+1 {
		t.Errorf("made %d, want every cert and the sa pair: %v", len(made), made)
	}
	for _, spec := range specs {
		c, err := p.Cert(spec.Name)
		if err != nil {
			t.Fatal(err)
		}
		if spec.IsCA() {
			if !c.IsCA || c.KeyUsage&x509.KeyUsageCertSign == 0 {
				t.Errorf("%s should be a CA that signs certificates", spec.Name)
			}
			if left := time.Until(c.NotAfter); left < CAValidity-24*time.Hour || left > CAValidity+24*time.Hour {
				t.Errorf("%s expires in %s, want ten years", spec.Name, left)
			}
			continue
		}
		if err := p.Check(spec, time.Now()); err != nil {
			t.Error(err)
		}
		if left := time.Until(c.NotAfter); left < 364*24*time.Hour || left > 366*24*time.Hour {
			t.Errorf("%s expires in %s, want a year", spec.Name, left)
		}
	}

	server, _ := p.Cert("server")
	for _, name := range []string{"node-1", "localhost", "127.0.0.1", "192.0.2.10"} {
		if err := server.VerifyHostname(name); err != nil {
			t.Errorf("server cert should cover %s: %v", name, err)
		}
	}
	if err := server.VerifyHostname("evil.example"); err == nil {
		t.Error("server cert covers a name it should not")
	}
	admin, _ := p.Cert("admin")
	if admin.Subject.CommonName != "admin" || strings.Join(admin.Subject.Organization, ",") != "admins" {
		t.Errorf("admin identity = %s in %v", admin.Subject.CommonName, admin.Subject.Organization)
	}
	// A certificate of the second CA must not be trusted by the first.
	if err := p.Check(CertSpec{Name: "etcd/client", CA: "ca", Usages: clientUsage}, time.Now()); err == nil {
		t.Error("a certificate of etcd/ca verifies against ca; each CA must be its own")
	}
}

func TestKeysAreRootOnly(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := Ensure(dir, specs); err != nil {
		t.Fatal(err)
	}
	var keys []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir() && path != dir && info.Mode().Perm() != 0o700:
			t.Errorf("%s is %v, want 0700", path, info.Mode().Perm())
		case strings.HasSuffix(path, ".key"):
			rel, _ := filepath.Rel(dir, path)
			keys = append(keys, rel)
			if info.Mode().Perm() != 0o600 {
				t.Errorf("%s is %v, want 0600", path, info.Mode().Perm())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking the PKI: %v", err)
	}
	// Every key must have been seen, or a missing or empty directory would
	// pass with nothing checked.
	var want []string
	for f := range pkiFiles(specs) {
		if strings.HasSuffix(f, ".key") {
			want = append(want, f)
		}
	}
	slices.Sort(keys)
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Errorf("keys checked: %v\nwant every key of the specs and sa.key: %v", keys, want)
	}
}

func TestRerunKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := Ensure(dir, specs); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	_, made, err := Ensure(dir, specs)
	if err != nil {
		t.Fatal(err)
	}
	if len(made) != 0 {
		t.Errorf("a rerun made %v", made)
	}
	// snapshot fails unless both hold every file of the PKI, so this
	// compares each of them.
	for f, data := range snapshot(t, dir) {
		if !bytes.Equal(before[f], data) {
			t.Errorf("a rerun changed %s", f)
		}
	}
}

// pkiFiles is every file Ensure makes, relative to its directory: a
// certificate and a key per spec, and the service-account key pair.
func pkiFiles(specs []CertSpec) map[string]bool {
	files := map[string]bool{"sa.key": true, "sa.pub": true}
	for _, spec := range specs {
		files[filepath.FromSlash(spec.Name)+".crt"] = true
		files[filepath.FromSlash(spec.Name)+".key"] = true
	}
	return files
}

// snapshot reads every file under dir, and fails unless it holds exactly
// the PKI's files: a walk of a missing or empty directory must not pass.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		out[rel], err = os.ReadFile(path)
		return err
	})
	if err != nil {
		t.Fatalf("reading the PKI in %s: %v", dir, err)
	}
	var missing, extra []string
	want := pkiFiles(specs)
	for f := range want {
		if _, ok := out[f]; !ok {
			missing = append(missing, f)
		}
	}
	for f := range out {
		if !want[f] {
			extra = append(extra, f)
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		slices.Sort(missing)
		slices.Sort(extra)
		t.Fatalf("%s should hold exactly the PKI's files: missing %v, unexpected %v", dir, missing, extra)
	}
	return out
}

// Check refuses a certificate that does not chain to the CA its spec names,
// or serves a usage it was not issued for.
func TestCheckRefusesAWrongChainOrUsage(t *testing.T) {
	specs := testSpecs("192.0.2.10")
	p, _, err := Ensure(t.TempDir(), specs)
	if err != nil {
		t.Fatal(err)
	}
	admin := specs[3]
	if err := p.Check(admin, time.Now()); err != nil {
		t.Fatalf("the admin certificate as issued: %v", err)
	}
	wrongCA := admin
	wrongCA.CA = "etcd/ca"
	if err := p.Check(wrongCA, time.Now()); err == nil {
		t.Error("a certificate checked against another CA should fail")
	}
	wrongUsage := admin
	wrongUsage.Usages = serverUsage
	if err := p.Check(wrongUsage, time.Now()); err == nil {
		t.Error("a client certificate checked for serving should fail")
	}
	if err := p.Check(admin, time.Now().Add(2*CertValidity)); err == nil {
		t.Error("an expired certificate should fail")
	}
	if err := p.Check(specs[0], time.Now()); err != nil {
		t.Errorf("the CA: %v", err)
	}
}
