package bootstrap

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dk8s/dk8s/pkg/pki"
	"k8s.io/client-go/tools/clientcmd"
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
		if err := p.Check(spec, time.Now()); err != nil {
			t.Error(err)
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
	if err := p.Check(pki.CertSpec{Name: "apiserver-etcd-client", CA: "ca", Usages: clientAuth}, time.Now()); err == nil {
		t.Error("the etcd client certificate verifies against the cluster CA; etcd's CA must be its own")
	}
}

func TestEnsurePKINeedsNodeNameAndServiceIP(t *testing.T) {
	for _, cfg := range []PKIConfig{{ServiceIP: testCfg.ServiceIP}, {NodeName: testCfg.NodeName}} {
		dir := filepath.Join(t.TempDir(), "pki")
		if _, _, err := EnsurePKI(dir, cfg); err == nil || !strings.Contains(err.Error(), "needs a node name and a service IP") {
			t.Errorf("%+v: %v", cfg, err)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("%+v: a PKI was made", cfg)
		}
	}
}

// RenewCerts renews every certificate but the CAs, and the kubeconfigs
// follow; CertExpiries reads them back.
func TestRenewCertsAndExpiries(t *testing.T) {
	cfg := Config{ClusterName: "dk8s", Dir: t.TempDir(), NodeName: "node-1",
		AdvertiseAddress: net.ParseIP("192.0.2.10"), ServiceCIDR: DefaultServiceCIDR, PodCIDR: DefaultPodCIDR}
	pcfg, err := cfg.PKIConfig()
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := EnsurePKI(cfg.PKIDir(), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeKubeconfigs(p, cfg); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(cfg.Dir, "admin.conf"))
	later := time.Now().Add(300 * 24 * time.Hour)
	renewed, err := RenewCerts(cfg, later)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, spec := range Specs(pcfg) {
		if !spec.IsCA() {
			want = append(want, spec.Name)
		}
	}
	if !slices.Equal(renewed, want) {
		t.Errorf("renewed %v, want %v", renewed, want)
	}
	if after, _ := os.ReadFile(filepath.Join(cfg.Dir, "admin.conf")); bytes.Equal(before, after) {
		t.Error("admin.conf still holds the certificate from before the renewal")
	}
	exp, err := CertExpiries(Config{Dir: cfg.Dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(exp) != len(Specs(pcfg)) {
		t.Errorf("%d expiries, want one per certificate: %+v", len(exp), exp)
	}
	if leaf := exp[0]; leaf.CA || leaf.NotAfter.Before(later.Add(364*24*time.Hour)) {
		t.Errorf("soonest expiry after renewal: %+v", leaf)
	}
	if _, err := RenewCerts(Config{Dir: cfg.Dir, ServiceCIDR: DefaultServiceCIDR}, later); err == nil {
		t.Error("renewed without an advertise address")
	}
	if _, err := CertExpiries(Config{Dir: t.TempDir()}); err == nil {
		t.Error("expiries of a cluster without a PKI")
	}
}

// Each kubeconfig carries its identity's certificate and the cluster CA,
// and client-go reads it.
func TestKubeconfigs(t *testing.T) {
	cfg := Config{ClusterName: "dk8s", Dir: t.TempDir(), AdvertiseAddress: net.ParseIP("127.0.0.1")}
	p, _, err := EnsurePKI(cfg.PKIDir(), testCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeKubeconfigs(p, cfg); err != nil {
		t.Fatal(err)
	}
	ca, _ := os.ReadFile(p.Path("ca", ".crt"))
	want := map[string]string{
		"admin": "kubernetes-admin", "super-admin": "kubernetes-super-admin", "kubelet": "system:node:node-1",
		"controller-manager": "system:kube-controller-manager", "scheduler": "system:kube-scheduler", "csr-approver": "system:dk8s:csr-approver",
	}
	if len(Kubeconfigs()) != len(want) {
		t.Errorf("kubeconfigs %+v, want one for each of %v", Kubeconfigs(), want)
	}
	for _, kc := range Kubeconfigs() {
		// The components' flags (plan.go) name NAME.conf.
		if kc.File != kc.Cert+".conf" || kc.CA != "ca" {
			t.Errorf("%+v: want NAME.conf carrying the certificate NAME, trusting the cluster CA", kc)
		}
		path := filepath.Join(cfg.Dir, kc.File)
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s is %v, want 0600: it holds a private key", path, info.Mode().Perm())
		}
		k, err := clientcmd.LoadFromFile(path)
		if err != nil {
			t.Fatal(err)
		}
		x, ok := k.Contexts[k.CurrentContext]
		if !ok || k.Clusters[x.Cluster] == nil || k.AuthInfos[x.AuthInfo] == nil {
			t.Fatalf("%s: current context %q does not name a cluster and a user: %+v", kc.File, k.CurrentContext, k)
		}
		if server := k.Clusters[x.Cluster].Server; server != "https://127.0.0.1:6443" {
			t.Errorf("%s: server %s", kc.File, server)
		}
		if string(k.Clusters[x.Cluster].CertificateAuthorityData) != string(ca) {
			t.Errorf("%s: CA data is not the cluster CA", kc.File)
		}
		user := k.AuthInfos[x.AuthInfo]
		pair, err := tls.X509KeyPair(user.ClientCertificateData, user.ClientKeyData)
		if err != nil {
			t.Fatalf("%s: certificate and key do not pair: %v", kc.File, err)
		}
		leaf, _ := x509.ParseCertificate(pair.Certificate[0])
		if leaf.Subject.CommonName != want[kc.Cert] {
			t.Errorf("%s: identity %s, want %s", kc.File, leaf.Subject.CommonName, want[kc.Cert])
		}
	}
}

func TestAPIServerCertificateNamesTheControlPlaneEndpoint(t *testing.T) {
	base := PKIConfig{NodeName: "n", Addresses: []net.IP{net.ParseIP("192.0.2.10")}, ServiceIP: net.ParseIP("10.96.0.1")}
	for endpoint, check := range map[string]func(pki.CertSpec) bool{
		"k8s.example.com": func(s pki.CertSpec) bool { return slices.Contains(s.DNSNames, "k8s.example.com") },
		"192.0.2.100": func(s pki.CertSpec) bool {
			return slices.ContainsFunc(s.IPs, func(ip net.IP) bool { return ip.Equal(net.ParseIP("192.0.2.100")) })
		},
	} {
		cfg := base
		cfg.Endpoint = endpoint
		found := false
		for _, s := range Specs(cfg) {
			if s.Name == "apiserver" {
				found = true
				if !check(s) {
					t.Errorf("the apiserver's certificate should name %s: %+v", endpoint, s)
				}
			}
		}
		if !found {
			t.Fatal("no apiserver certificate in the specs")
		}
	}
}
