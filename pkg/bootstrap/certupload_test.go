package bootstrap

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/dk8s/dk8s/pkg/token"
)

func TestCertsTravelSealedAndOnlyWithTheirKey(t *testing.T) {
	ctx := context.Background()
	src, dst := t.TempDir(), t.TempDir()
	for _, f := range sharedPKI {
		os.MkdirAll(filepath.Dir(filepath.Join(src, f)), 0o700)
		if err := os.WriteFile(filepath.Join(src, f), []byte("the content of "+f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cs := fake.NewSimpleClientset()
	// A join token of a month: the certificates must not live as long.
	if _, err := token.Create(ctx, cs, 720*time.Hour, "a long-lived join token"); err != nil {
		t.Fatal(err)
	}
	key, err := NewCertificateKey()
	if err != nil || len(key) != 64 {
		t.Fatalf("NewCertificateKey = %q, %v", key, err)
	}
	if err := UploadCerts(ctx, cs, src, key); err != nil {
		t.Fatal(err)
	}
	s, err := cs.CoreV1().Secrets("kube-system").Get(ctx, certsSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.OwnerReferences) != 1 || !strings.HasPrefix(s.OwnerReferences[0].Name, "bootstrap-token-") {
		t.Fatalf("the certificates should be owned by a token, to go with it: %+v", s.OwnerReferences)
	}
	owner, err := cs.CoreV1().Secrets("kube-system").Get(ctx, s.OwnerReferences[0].Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expires, err := time.Parse(time.RFC3339, string(owner.Data["expiration"]))
	if err != nil || time.Until(expires) > CertsTTL || time.Until(expires) < CertsTTL-time.Minute {
		t.Errorf("the certificates' owner should expire in %s: %q %v", CertsTTL, owner.Data["expiration"], err)
	}
	for k := range owner.Data {
		if strings.HasPrefix(k, "usage-bootstrap-") || k == "auth-extra-groups" {
			t.Errorf("the certificates' owner should authenticate and sign nothing, has %s", k)
		}
	}
	for k, v := range s.Data {
		if bytes.Contains(v, []byte("the content of")) {
			t.Errorf("%s is stored in the clear", k)
		}
	}

	other, _ := NewCertificateKey()
	if err := DownloadCerts(ctx, cs, other, dst); err == nil || !strings.Contains(err.Error(), "does not open") {
		t.Errorf("another key: %v, want a refusal", err)
	}
	if entries, _ := os.ReadDir(dst); len(entries) != 0 {
		t.Errorf("a refused key should write nothing: %v", entries)
	}
	// Each file is sealed with its name: one put in another's place does
	// not open, even with the key.
	swapped := s.DeepCopy()
	swapped.Data[secretKey("ca.key")], swapped.Data[secretKey("sa.key")] = s.Data[secretKey("sa.key")], s.Data[secretKey("ca.key")]
	cs.CoreV1().Secrets("kube-system").Update(ctx, swapped, metav1.UpdateOptions{})
	if err := DownloadCerts(ctx, cs, key, dst); err == nil {
		t.Error("files swapped in the Secret should not open")
	}
	cs.CoreV1().Secrets("kube-system").Update(ctx, s, metav1.UpdateOptions{})
	if err := DownloadCerts(ctx, cs, "xyz", dst); err == nil || !strings.Contains(err.Error(), "64 hex digits") {
		t.Errorf("a malformed key: %v", err)
	}

	if err := DownloadCerts(ctx, cs, key, dst); err != nil {
		t.Fatal(err)
	}
	for _, f := range sharedPKI {
		got, err := os.ReadFile(filepath.Join(dst, f))
		if err != nil || string(got) != "the content of "+f {
			t.Errorf("%s: %q, %v", f, got, err)
		}
		st, _ := os.Stat(filepath.Join(dst, f))
		if strings.HasSuffix(f, ".key") && st.Mode().Perm() != 0o600 {
			t.Errorf("%s is %v, want 0600", f, st.Mode().Perm())
		}
	}

	cs.CoreV1().Secrets("kube-system").Delete(ctx, certsSecret, metav1.DeleteOptions{})
	if err := DownloadCerts(ctx, cs, key, t.TempDir()); err == nil || !strings.Contains(err.Error(), "token create --control-plane") {
		t.Errorf("expired certificates: %v, want what to run", err)
	}
}
