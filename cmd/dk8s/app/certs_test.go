package app

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/bootstrap"
)

// certs renew issues for the names the cluster was started with (kept in
// its directory), not for today's host name and route.
func TestCertsRenewKeepsTheClustersNames(t *testing.T) {
	dir := t.TempDir()
	marker := "apiVersion: dk8s.io/v1alpha1\nkind: Cluster\nname: dk8s\nnodeName: given-node\nadvertiseAddress: 198.51.100.7\nserviceCIDR: 10.96.0.0/12\npodCIDR: 10.244.0.0/16\n"
	if err := os.WriteFile(filepath.Join(dir, bootstrap.MarkerFile), []byte(marker), 0o600); err != nil {
		t.Fatal(err)
	}
	pcfg := bootstrap.PKIConfig{NodeName: "given-node", ServiceIP: net.ParseIP("10.96.0.1"), Addresses: []net.IP{net.ParseIP("198.51.100.7")}}
	p, _, err := bootstrap.EnsurePKI(filepath.Join(dir, "pki"), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if err := Run(context.Background(), Streams{Out: &out, Err: &errb}, []string{"certs", "renew", "--dir", dir}); err != nil {
		t.Fatalf("certs renew: %v\n%s", err, errb.String())
	}
	c, err := p.Cert("apiserver")
	if err != nil {
		t.Fatal(err)
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
