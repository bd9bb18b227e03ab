package bootstrap

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

var testCfg = PKIConfig{
	NodeName:  "node-1",
	Addresses: []net.IP{net.ParseIP("192.0.2.10")},
	ServiceIP: net.ParseIP("10.96.0.1"),
}

func TestPKIChainsAndNames(t *testing.T) {
	p, made, err := EnsurePKI(t.TempDir(), testCfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(made) != len(Specs(testCfg))+1 {
		t.Errorf("made %d, want every cert and the sa pair: %v", len(made), made)
	}
	for _, spec := range Specs(testCfg) {
		c, err := p.Cert(spec.Name)
		if err != nil {
			t.Fatal(err)
		}
		if spec.IsCA() {
			if !c.IsCA || c.KeyUsage&x509.KeyUsageCertSign == 0 {
				t.Errorf("%s should be a CA that signs certificates", spec.Name)
			}
			continue
		}
		ca, _ := p.Cert(spec.CA)
		roots := x509.NewCertPool()
		roots.AddCert(ca)
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: spec.Usages}); err != nil {
			t.Errorf("%s does not verify against %s for %v: %v", spec.Name, spec.CA, spec.Usages, err)
		}
		if c.IsCA {
			t.Errorf("%s must not be a CA", spec.Name)
		}
		if left := time.Until(c.NotAfter); left < 364*24*time.Hour || left > 366*24*time.Hour {
			t.Errorf("%s expires in %s, want a year", spec.Name, left)
		}
	}

	api, _ := p.Cert("apiserver")
	for _, name := range []string{"node-1", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"} {
		if err := api.VerifyHostname(name); err != nil {
			t.Errorf("apiserver cert should cover %s: %v", name, err)
		}
	}
	for _, ip := range []string{"127.0.0.1", "192.0.2.10", "10.96.0.1", "::1"} {
		if err := api.VerifyHostname(ip); err != nil {
			t.Errorf("apiserver cert should cover %s: %v", ip, err)
		}
	}
	if err := api.VerifyHostname("evil.example"); err == nil {
		t.Error("apiserver cert covers a name it should not")
	}
	kubelet, _ := p.Cert("kubelet")
	if kubelet.Subject.CommonName != "system:node:node-1" || strings.Join(kubelet.Subject.Organization, ",") != "system:nodes" {
		t.Errorf("kubelet identity = %s in %v", kubelet.Subject.CommonName, kubelet.Subject.Organization)
	}
	// etcd's client certificate must not be trusted by the cluster CA.
	etcdClient, _ := p.Cert("apiserver-etcd-client")
	clusterCA, _ := p.Cert("ca")
	roots := x509.NewCertPool()
	roots.AddCert(clusterCA)
	if _, err := etcdClient.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("the etcd client certificate verifies against the cluster CA; etcd's CA must be its own")
	}
}

func TestPKIKeysAreRootOnly(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := EnsurePKI(dir, testCfg); err != nil {
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
	for f := range pkiFiles(testCfg) {
		if strings.HasSuffix(f, ".key") {
			want = append(want, f)
		}
	}
	slices.Sort(keys)
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Errorf("keys checked: %v\nwant every key of Specs and sa.key: %v", keys, want)
	}
}

func TestPKIRerunKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := EnsurePKI(dir, testCfg); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	_, made, err := EnsurePKI(dir, testCfg)
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

func TestRenewKeepsCAsAndKeys(t *testing.T) {
	dir := t.TempDir()
	p, _, err := EnsurePKI(dir, testCfg)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	later := time.Now().Add(300 * 24 * time.Hour)
	if _, err := p.Renew(testCfg, later); err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, dir)
	for _, spec := range Specs(testCfg) {
		key := spec.Name + ".key"
		if !bytes.Equal(before[key], after[key]) {
			t.Errorf("renewal changed the key of %s", spec.Name)
		}
		crt := spec.Name + ".crt"
		if spec.IsCA() != bytes.Equal(before[crt], after[crt]) {
			t.Errorf("%s: a renewal should replace exactly the non-CA certificates", spec.Name)
		}
	}
	exp, err := p.Expiries(testCfg)
	if err != nil {
		t.Fatal(err)
	}
	if leaf := exp[0]; leaf.CA || leaf.NotAfter.Before(later.Add(364*24*time.Hour)) {
		t.Errorf("soonest expiry after renewal: %+v", leaf)
	}
}

// pkiFiles is every file EnsurePKI makes, relative to its directory: a
// certificate and a key per spec, and the service-account key pair.
func pkiFiles(cfg PKIConfig) map[string]bool {
	files := map[string]bool{"sa.key": true, "sa.pub": true}
	for _, spec := range Specs(cfg) {
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
	want := pkiFiles(testCfg)
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
