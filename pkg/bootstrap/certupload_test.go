package bootstrap

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
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
	cs := fake.NewSimpleClientset(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-abcdef", Namespace: "kube-system", UID: "uid-1"}})
	key, err := NewCertificateKey()
	if err != nil || len(key) != 64 {
		t.Fatalf("NewCertificateKey = %q, %v", key, err)
	}
	if err := UploadCerts(ctx, cs, src, key, token.Token{ID: "abcdef"}); err != nil {
		t.Fatal(err)
	}
	s, err := cs.CoreV1().Secrets("kube-system").Get(ctx, certsSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != "uid-1" {
		t.Errorf("the certificates should be owned by their token, to go with it: %+v", s.OwnerReferences)
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
