package bootstrap

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestKubeconfigs(t *testing.T) {
	dir := t.TempDir()
	p, _, err := EnsurePKI(filepath.Join(dir, "pki"), testCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteKubeconfigs(p, dir, "dk8s", "https://127.0.0.1:6443"); err != nil {
		t.Fatal(err)
	}
	ca, _ := os.ReadFile(p.Path("ca", ".crt"))
	want := map[string]string{"admin": "kubernetes-admin", "kubelet": "system:node:node-1", "scheduler": "system:kube-scheduler"}
	for name, cn := range want {
		path := filepath.Join(dir, name+".conf")
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s is %v, want 0600: it holds a private key", path, info.Mode().Perm())
		}
		data, _ := os.ReadFile(path)
		var k kubeconfig
		if err := yaml.Unmarshal(data, &k); err != nil {
			t.Fatal(err)
		}
		if k.Clusters[0].Cluster.Server != "https://127.0.0.1:6443" || k.CurrentContext != k.Contexts[0].Name {
			t.Errorf("%s: %+v", name, k)
		}
		if got := unb64(t, k.Clusters[0].Cluster.CAData); string(got) != string(ca) {
			t.Errorf("%s: CA data is not the cluster CA", name)
		}
		pair, err := tls.X509KeyPair(unb64(t, k.Users[0].User.CertData), unb64(t, k.Users[0].User.KeyData))
		if err != nil {
			t.Fatalf("%s: certificate and key do not pair: %v", name, err)
		}
		leaf, _ := x509.ParseCertificate(pair.Certificate[0])
		if leaf.Subject.CommonName != cn {
			t.Errorf("%s: identity %s, want %s", name, leaf.Subject.CommonName, cn)
		}
	}
	block, _ := pem.Decode(ca)
	if block == nil {
		t.Fatal("ca.crt is not PEM")
	}
}

func unb64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
