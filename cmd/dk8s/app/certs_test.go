package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/bootstrap"
)

// The renewal itself is tested in pkg/bootstrap; these are the command's
// refusals on a cluster never started.
func TestCertsOfAClusterNeverStarted(t *testing.T) {
	dir := t.TempDir()
	stdout, _, err := run(t, nil, "certs", "--dir", dir)
	if want := "reading the PKI in " + filepath.Join(dir, "pki") + ": "; err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "(start the cluster first)") || stdout != "" {
		t.Errorf("certs: error %v, want one saying %q... (start the cluster first); output %q", err, want, stdout)
	}

	// The cluster's settings, so that renew needs no route to find them.
	marker := "apiVersion: dk8s.io/v1alpha1\nkind: Cluster\nname: dk8s\nnodeName: n\nadvertiseAddress: 198.51.100.7\nserviceCIDR: 10.96.0.0/12\npodCIDR: 10.244.0.0/16\n"
	if err := os.WriteFile(filepath.Join(dir, bootstrap.MarkerFile), []byte(marker), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := run(t, nil, "certs", "renew", "--dir", dir)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "pki")) || stderr != "" {
		t.Errorf("certs renew without a PKI: error %v, want one naming %s; said %q", err, filepath.Join(dir, "pki"), stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "admin.conf")); !os.IsNotExist(err) {
		t.Errorf("a failed renewal wrote admin.conf: %v", err)
	}
}
