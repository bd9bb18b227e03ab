package bootstrap

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dk8s/dk8s/pkg/pki"
)

// RenewCerts issues for the names the cluster was started with (kept in
// its directory), not for today's host name and route.
func TestRenewCertsKeepsTheClustersNames(t *testing.T) {
	dir := t.TempDir()
	marker := "apiVersion: dk8s.io/v1alpha1\nkind: Cluster\nname: dk8s\nnodeName: given-node\nadvertiseAddress: 198.51.100.7\nserviceCIDR: 10.96.0.0/12\npodCIDR: 10.244.0.0/16\n"
	if err := os.WriteFile(filepath.Join(dir, MarkerFile), []byte(marker), 0o600); err != nil {
		t.Fatal(err)
	}
	pcfg := PKIConfig{NodeName: "given-node", ServiceIP: net.ParseIP("10.96.0.1"), Addresses: []net.IP{net.ParseIP("198.51.100.7")}}
	p, _, err := EnsurePKI(filepath.Join(dir, "pki"), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	before, err := p.Cert("apiserver")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Dir = dir
	if err := cfg.Resolve(); err != nil {
		t.Fatal(err)
	}
	renewed, err := RenewCerts(cfg, time.Now())
	if err != nil {
		t.Fatalf("RenewCerts: %v", err)
	}
	if !slices.Contains(renewed, "apiserver") || slices.Contains(renewed, "ca") {
		t.Errorf("renewed %v: want every certificate but the CAs", renewed)
	}
	c, err := p.Cert("apiserver")
	if err != nil {
		t.Fatal(err)
	}
	if c.SerialNumber.Cmp(before.SerialNumber) == 0 || c.NotAfter.Before(time.Now().Add(pki.CertValidity-time.Hour)) {
		t.Errorf("the apiserver certificate was not renewed: serial %v, expires %v", c.SerialNumber, c.NotAfter)
	}
	if !slices.Contains(c.DNSNames, "given-node") {
		t.Errorf("the renewed apiserver certificate lost the node name: %v", c.DNSNames)
	}
	if !slices.ContainsFunc(c.IPAddresses, net.ParseIP("198.51.100.7").Equal) {
		t.Errorf("the renewed apiserver certificate lost the advertise address: %v", c.IPAddresses)
	}
	kc, _ := os.ReadFile(filepath.Join(dir, "admin.conf"))
	if !strings.Contains(string(kc), "https://198.51.100.7:6443") {
		t.Errorf("admin.conf should name the cluster's address:\n%s", kc)
	}
}
