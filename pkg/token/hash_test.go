package token

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"strings"
	"testing"
)

// kubeadm's own test vector (cmd/kubeadm/app/util/pubkeypin): a hash dk8s
// prints must be one kubeadm accepts, and the other way round.
func TestCAHashIsKubeadms(t *testing.T) {
	data, err := os.ReadFile("testdata/kubeadm-pubkeypin-cert.pem")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := CAHash(cert), "sha256:345959acb2c3b2feb87d281961c893f62a314207ef02599f1cc4a5fb255480b3"; got != want {
		t.Errorf("CAHash = %s, want kubeadm's %s", got, want)
	}
}

func TestParseHash(t *testing.T) {
	const hex = "345959acb2c3b2feb87d281961c893f62a314207ef02599f1cc4a5fb255480b3"
	for _, in := range []string{"sha256:" + hex, "SHA256:" + strings.ToUpper(hex), hex, " sha256:" + hex + "\n"} {
		if got, err := ParseHash(in); err != nil || got != "sha256:"+hex {
			t.Errorf("ParseHash(%q) = %q, %v", in, got, err)
		}
	}
	for in, want := range map[string]string{
		"sha1:" + hex[:40]:         `"sha1" is not a hash dk8s knows`,
		"sha256:" + hex[:63]:       "is not sha256:<64 hex digits>",
		"sha256:" + hex + "00":     "is not sha256:<64 hex digits>",
		"sha256:" + hex[:63] + "g": "is not sha256:<64 hex digits>",
		"":                         "is not sha256:<64 hex digits>",
	} {
		_, err := ParseHash(in)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "'dk8s token create --print-join-command'") {
			t.Errorf("ParseHash(%q): error %v, want one saying %q and where to get the hash", in, err, want)
		}
	}
}
