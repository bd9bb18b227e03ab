package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// verifySigned returns cluster-info's kubeconfig once the bootstrapsigner's
// signature of it for tok checks out.
func verifySigned(cm *corev1.ConfigMap, tok Token, host string) (string, error) {
	kc := cm.Data[kubeconfigKey]
	if kc == "" {
		return "", fmt.Errorf("the cluster-info at %s holds no kubeconfig: the control plane is not set up for joins; run 'dk8s token create' on it", host)
	}
	sig, ok := cm.Data[signaturePrefix+tok.ID]
	if !ok || sig == "" {
		return "", fmt.Errorf("%w %s at %s: the token is unknown to this cluster or has expired; make one with 'dk8s token create' on the control plane (one made a moment ago may not be signed yet: try again)", ErrNoSignature, tok.ID, host)
	}
	if err := verifyDetachedJWS(sig, kc, tok); err != nil {
		return "", fmt.Errorf("cluster-info at %s: %w", host, err)
	}
	return kc, nil
}

// verifyDetachedJWS checks sig, a compact JWS with its payload left out
// (RFC 7515 appendix F), as the bootstrapsigner makes it: HS256 keyed with
// the token's secret, the token's ID as kid. The MAC is computed over the
// header as received, not as this code would write it: go-jose writes the
// header, and its bytes are its business.
func verifyDetachedJWS(sig, content string, tok Token) error {
	parts := strings.Split(sig, ".")
	if len(parts) != 3 || parts[1] != "" {
		return fmt.Errorf("the signature for token %s is not a detached JWS (HEADER..SIGNATURE)", tok.ID)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return fmt.Errorf("the signature for token %s has a header that is not base64url: %w", tok.ID, err)
	}
	var hdr struct {
		Alg  string   `json:"alg"`
		Kid  string   `json:"kid"`
		Crit []string `json:"crit"`
	}
	if err := json.Unmarshal(raw, &hdr); err != nil {
		return fmt.Errorf("the signature for token %s has a header that is not JSON: %w", tok.ID, err)
	}
	switch {
	case hdr.Alg != "HS256":
		return fmt.Errorf("the signature for token %s is made with %q, not HS256: it is not the bootstrapsigner's", tok.ID, hdr.Alg)
	case hdr.Kid != tok.ID:
		return fmt.Errorf("the signature filed under token %s names the key %q: it is not the bootstrapsigner's", tok.ID, hdr.Kid)
	case len(hdr.Crit) > 0:
		// Extensions that change what is signed (RFC 7797's b64) are
		// never the bootstrapsigner's.
		return fmt.Errorf("the signature for token %s needs JWS extensions %v that the bootstrapsigner never uses", tok.ID, hdr.Crit)
	}
	got, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("the signature for token %s is not base64url: %w", tok.ID, err)
	}
	mac := hmac.New(sha256.New, []byte(tok.Secret))
	mac.Write([]byte(parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(content))))
	if !hmac.Equal(got, mac.Sum(nil)) {
		return fmt.Errorf("the signature for token %s does not match the token's secret: check the token's part after the dot; if it is right, something between this host and the control plane altered cluster-info", tok.ID)
	}
	return nil
}
