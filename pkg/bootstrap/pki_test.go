package bootstrap

import (
	"bytes"
	"crypto/x509"
	"io/fs"
	"net"
	"os"
	"path/filepath"
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
	keys := 0
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		info, _ := d.Info()
		switch {
		case d.IsDir() && path != dir && info.Mode().Perm() != 0o700:
			t.Errorf("%s is %v, want 0700", path, info.Mode().Perm())
		case strings.HasSuffix(path, ".key"):
			keys++
			if info.Mode().Perm() != 0o600 {
				t.Errorf("%s is %v, want 0600", path, info.Mode().Perm())
			}
		}
		return nil
	})
	if keys != len(Specs(testCfg))+1 {
		t.Errorf("found %d keys", keys)
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

func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			out[rel], _ = os.ReadFile(path)
		}
		return nil
	})
	return out
}

func TestSplitRule(t *testing.T) {
	got := splitRule(`-A POSTROUTING -s 10.244.0.10/32 -m comment --comment "name: \"dk8s\" id: \"3dfd\"" -j CNI-abbb`)
	want := []string{"-A", "POSTROUTING", "-s", "10.244.0.10/32", "-m", "comment", "--comment", `name: "dk8s" id: "3dfd"`, "-j", "CNI-abbb"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q", got)
	}
}
