package pki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

var testKubeconfigs = []Kubeconfig{
	{File: "admin.conf", Cert: "admin", CA: "ca"},
	{File: "etcd-client.conf", Cert: "etcd/client", CA: "etcd/ca"},
}

func TestKubeconfigs(t *testing.T) {
	dir := t.TempDir()
	p, _, err := Ensure(filepath.Join(dir, "pki"), specs)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteKubeconfigs(p, dir, "dk8s", "https://127.0.0.1:6443", testKubeconfigs); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"admin.conf": "admin", "etcd-client.conf": "etcd-client"}
	for _, kc := range testKubeconfigs {
		path := filepath.Join(dir, kc.File)
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s is %v, want 0600: it holds a private key", path, info.Mode().Perm())
		}
		k := readKubeconfig(t, path)
		if k.Clusters[0].Cluster.Server != "https://127.0.0.1:6443" || k.CurrentContext != k.Contexts[0].Name {
			t.Errorf("%s: %+v", kc.File, k)
		}
		if k.CurrentContext != kc.Cert+"@dk8s" || k.Contexts[0].Context.User != k.Users[0].Name || k.Contexts[0].Context.Cluster != "dk8s" {
			t.Errorf("%s: context %+v, user %s", kc.File, k.Contexts[0], k.Users[0].Name)
		}
		ca, _ := os.ReadFile(p.Path(kc.CA, ".crt"))
		if got := unb64(t, k.Clusters[0].Cluster.CAData); string(got) != string(ca) {
			t.Errorf("%s: CA data is not %s", kc.File, kc.CA)
		}
		if block, _ := pem.Decode(ca); block == nil {
			t.Fatalf("%s.crt is not PEM", kc.CA)
		}
		pair, err := tls.X509KeyPair(unb64(t, k.Users[0].User.CertData), unb64(t, k.Users[0].User.KeyData))
		if err != nil {
			t.Fatalf("%s: certificate and key do not pair: %v", kc.File, err)
		}
		leaf, _ := x509.ParseCertificate(pair.Certificate[0])
		if leaf.Subject.CommonName != want[kc.File] {
			t.Errorf("%s: identity %s, want %s", kc.File, leaf.Subject.CommonName, want[kc.File])
		}
	}
}

// A kubeconfig is rewritten only when what it embeds changed: after a
// renewal, not on every start.
func TestKubeconfigsRewrittenOnlyWhenChanged(t *testing.T) {
	dir := t.TempDir()
	p, _, err := Ensure(filepath.Join(dir, "pki"), specs)
	if err != nil {
		t.Fatal(err)
	}
	kcs := testKubeconfigs[:1]
	path := filepath.Join(dir, kcs[0].File)
	if err := WriteKubeconfigs(p, dir, "dk8s", "https://127.0.0.1:6443", kcs); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	if err := WriteKubeconfigs(p, dir, "dk8s", "https://127.0.0.1:6443", kcs); err != nil {
		t.Fatal(err)
	}
	if info, _ := os.Stat(path); !info.ModTime().Equal(old) {
		t.Errorf("an unchanged kubeconfig was rewritten")
	}
	before, _ := os.ReadFile(path)
	if _, err := p.Renew(specs, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := WriteKubeconfigs(p, dir, "dk8s", "https://127.0.0.1:6443", kcs); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(path)
	if string(after) == string(before) {
		t.Error("a renewal did not reach the kubeconfig")
	}
	crt, _ := os.ReadFile(p.Path("admin", ".crt"))
	if k := readKubeconfig(t, path); string(unb64(t, k.Users[0].User.CertData)) != string(crt) {
		t.Error("the kubeconfig does not embed the renewed certificate")
	}
}

func TestKubeconfigsFail(t *testing.T) {
	dir := t.TempDir()
	p, _, err := Ensure(filepath.Join(dir, "pki"), specs)
	if err != nil {
		t.Fatal(err)
	}
	for _, kc := range []Kubeconfig{
		{File: "x.conf", Cert: "admin", CA: "missing-ca"},
		{File: "x.conf", Cert: "missing", CA: "ca"},
	} {
		if err := WriteKubeconfigs(p, dir, "dk8s", "https://127.0.0.1:6443", []Kubeconfig{kc}); err == nil {
			t.Errorf("%+v: written without its certificates", kc)
		}
	}
	if err := os.Remove(p.Path("admin", ".key")); err != nil {
		t.Fatal(err)
	}
	if err := WriteKubeconfigs(p, dir, "dk8s", "https://127.0.0.1:6443", testKubeconfigs[:1]); err == nil {
		t.Error("written without its key")
	}
	if _, err := os.Stat(filepath.Join(dir, "x.conf")); err == nil {
		t.Error("a failed kubeconfig left a file")
	}
	if err := os.Mkdir(filepath.Join(dir, "taken.conf"), 0o700); err != nil {
		t.Fatal(err)
	}
	err = WriteKubeconfigs(p, dir, "dk8s", "https://127.0.0.1:6443", []Kubeconfig{{File: "taken.conf", Cert: "etcd/client", CA: "etcd/ca"}})
	if err == nil || !strings.Contains(err.Error(), "writing "+filepath.Join(dir, "taken.conf")) {
		t.Errorf("a kubeconfig replacing a directory: %v", err)
	}
}

func readKubeconfig(t *testing.T, path string) kubeconfig {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var k kubeconfig
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	return k
}

func unb64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
