package token

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestCreateWritesTheSecretTheApiserverReads(t *testing.T) {
	cs := fake.NewClientset()
	before := time.Now()
	tok, err := Create(context.Background(), cs, 2*time.Hour, "for worker-1")
	if err != nil {
		t.Fatal(err)
	}
	s, err := cs.CoreV1().Secrets("kube-system").Get(context.Background(), "bootstrap-token-"+tok.ID, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Create made no secret bootstrap-token-%s: %v", tok.ID, err)
	}
	if s.Type != "bootstrap.kubernetes.io/token" || s.Labels["app.kubernetes.io/managed-by"] != "dk8s" {
		t.Errorf("secret type %q, labels %v", s.Type, s.Labels)
	}
	exp, err := time.Parse(time.RFC3339, string(s.Data["expiration"]))
	if err != nil || exp.Before(before.Add(2*time.Hour-time.Second)) || exp.After(time.Now().Add(2*time.Hour)) || !exp.Equal(tok.Expires) {
		t.Errorf("expiration %q (%v), want RFC3339 two hours from now, the token's %v", s.Data["expiration"], err, tok.Expires)
	}
	want := map[string]string{
		"token-id": tok.ID, "token-secret": tok.Secret,
		"usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
		"auth-extra-groups": Group, "description": "for worker-1",
	}
	for k, v := range want {
		if string(s.Data[k]) != v {
			t.Errorf("secret key %s = %q, want %q", k, s.Data[k], v)
		}
	}
	if len(s.Data) != len(want)+1 {
		t.Errorf("secret has keys beyond the token format's: %v", keys(s.Data))
	}
	if _, err := Parse(tok.String()); err != nil || !slices.Equal(tok.Groups, []string{Group}) {
		t.Errorf("Create returned %+v: %v", tok, err)
	}
}

func TestCreateWithNoTTLNeverExpires(t *testing.T) {
	cs := fake.NewClientset()
	tok, err := Create(context.Background(), cs, 0, "")
	if err != nil || !tok.Expires.IsZero() {
		t.Fatalf("Create with ttl 0: %+v, %v", tok, err)
	}
	s, _ := cs.CoreV1().Secrets("kube-system").Get(context.Background(), "bootstrap-token-"+tok.ID, metav1.GetOptions{})
	if _, ok := s.Data["expiration"]; ok {
		t.Errorf("a token that never expires has an expiration: %q", s.Data["expiration"])
	}
	if _, ok := s.Data["description"]; ok {
		t.Errorf("an empty description was written")
	}
	if _, err := Create(context.Background(), cs, -time.Hour, ""); err == nil || !strings.Contains(err.Error(), "cannot be negative") {
		t.Errorf("Create with a negative ttl: %v", err)
	}
}

func bootstrapSecret(id, secret, expiration string) *corev1.Secret {
	data := map[string][]byte{"token-id": []byte(id), "token-secret": []byte(secret), "usage-bootstrap-signing": []byte("true"), "usage-bootstrap-authentication": []byte("true"), "auth-extra-groups": []byte("system:bootstrappers:kubeadm:default-node-token")}
	if expiration != "" {
		data["expiration"] = []byte(expiration)
	}
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-" + id, Namespace: "kube-system"}, Type: "bootstrap.kubernetes.io/token", Data: data}
}

func TestListSortsByExpiryAndKeepsOnlyTokens(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	cs := fake.NewClientset(
		bootstrapSecret("never1", "0123456789abcdef", ""),
		bootstrapSecret("later1", "0123456789abcdef", now.Add(48*time.Hour).Format(time.RFC3339)),
		bootstrapSecret("expird", "0123456789abcdef", now.Add(-time.Hour).Format(time.RFC3339)),
		bootstrapSecret("soon01", "0123456789abcdef", now.Add(time.Hour).Format(time.RFC3339)),
		bootstrapSecret("garble", "0123456789abcdef", "tomorrow"),
		bootstrapSecret("BADID1", "0123456789abcdef", ""),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-opaque", Namespace: "kube-system"}, Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{"token-id": []byte("opaque"), "token-secret": []byte("0123456789abcdef")}},
	)
	// Named for another ID: the apiserver would not take it.
	misnamed := bootstrapSecret("misnam", "0123456789abcdef", "")
	misnamed.Name = "bootstrap-token-other1"
	cs.Tracker().Add(misnamed)

	toks, err := List(context.Background(), cs)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tok := range toks {
		ids = append(ids, tok.ID)
	}
	if want := []string{"garble", "expird", "soon01", "later1", "never1"}; !slices.Equal(ids, want) {
		t.Errorf("List = %v, want %v (unreadable expiry as expired first, never last, no other secret)", ids, want)
	}
	if len(toks) == 5 {
		if !toks[1].Expired(now) || toks[2].Expired(now) || toks[4].Expired(now) || !toks[0].Expired(now) {
			t.Errorf("Expired wrong: %+v", toks)
		}
		if !slices.Equal(toks[2].Usages, []string{"authentication", "signing"}) || !slices.Equal(toks[2].Groups, []string{"system:bootstrappers:kubeadm:default-node-token"}) {
			t.Errorf("usages %v, groups %v", toks[2].Usages, toks[2].Groups)
		}
	}
}

func TestDelete(t *testing.T) {
	cs := fake.NewClientset(bootstrapSecret("abcdef", "0123456789abcdef", ""), bootstrapSecret("ghijkl", "0123456789abcdef", ""))
	ctx := context.Background()
	if err := Delete(ctx, cs, "abcdef"); err != nil {
		t.Fatal(err)
	}
	if err := Delete(ctx, cs, "ghijkl.0123456789abcdef"); err != nil {
		t.Fatal(err)
	}
	if toks, _ := List(ctx, cs); len(toks) != 0 {
		t.Errorf("tokens left after deleting both: %+v", toks)
	}
	err := Delete(ctx, cs, "abcdef")
	if want := "there is no token abcdef (it may have expired and been cleaned up): see 'dk8s token list'"; err == nil || err.Error() != want {
		t.Errorf("deleting a token that is gone: %v, want %q", err, want)
	}
	if err := Delete(ctx, cs, "bootstrap-token-abcdef"); err == nil || !strings.Contains(err.Error(), "neither a token ID") {
		t.Errorf("deleting by secret name: %v", err)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
