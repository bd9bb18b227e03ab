package token

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
)

// CAHash is cert's public-key pin in kubeadm's format (its
// --discovery-token-ca-cert-hash): "sha256:" and the hex SHA-256 of the
// certificate's SubjectPublicKeyInfo. It pins the key, not the
// certificate, so it holds across a CA's renewal with the same key.
func CAHash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ParseHash reads a CA pin as a user pastes it, "sha256:" and 64 hex digits
// (the prefix may be left out, the digits may be upper-case), and returns it
// in CAHash's form.
func ParseHash(s string) (string, error) {
	h := strings.ToLower(strings.TrimSpace(s))
	if algo, digits, ok := strings.Cut(h, ":"); ok {
		if algo != "sha256" {
			return "", fmt.Errorf("CA hash %q: %q is not a hash dk8s knows: use sha256:<64 hex digits>, as 'dk8s token create --print-join-command' prints on the control plane", s, algo)
		}
		h = digits
	}
	if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("CA hash %q is not sha256:<64 hex digits>: copy it whole from 'dk8s token create --print-join-command' on the control plane", s)
	}
	return "sha256:" + h, nil
}
