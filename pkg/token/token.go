package token

import (
	"crypto/rand"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Group is the extra group dk8s's node tokens carry (kubeadm's is
// system:bootstrappers:kubeadm:default-node-token): the join RBAC
// (EnsureClusterInfo) is bound to it, so a token made by hand without it
// cannot join a node.
const Group = "system:bootstrappers:dk8s:default-node-token"

// Token is a bootstrap token: ID is public (it names the token's Secret and
// its signature in cluster-info), Secret is what proves the holder.
type Token struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
	// Expires is when the apiserver stops accepting the token and the
	// tokencleaner deletes it; zero means never.
	Expires time.Time `json:"expires,omitzero"`
	// Usages are "authentication" (a bearer token) and "signing" (the
	// bootstrapsigner signs cluster-info with it).
	Usages      []string `json:"usages"`
	Groups      []string `json:"groups"`
	Description string   `json:"description,omitempty"`
}

// String is the token as a joining host passes it: ID.SECRET.
func (t Token) String() string { return t.ID + "." + t.Secret }

// Expired tells whether t no longer authenticates at now.
func (t Token) Expired(now time.Time) bool {
	return !t.Expires.IsZero() && !now.Before(t.Expires)
}

var (
	tokenRE = regexp.MustCompile(`\A([a-z0-9]{6})\.([a-z0-9]{16})\z`)
	idRE    = regexp.MustCompile(`\A[a-z0-9]{6}\z`)
)

// Parse reads a token in its ID.SECRET form. Only ID and Secret are set:
// the rest lives on the control plane.
func Parse(s string) (Token, error) {
	m := tokenRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		// Not echoed: what was given may be a real token mistyped.
		return Token{}, fmt.Errorf("the token given (%d characters) is not a join token: a token is 6 and 16 lower-case letters or digits joined by a dot (abcdef.0123456789abcdef); get one with 'dk8s token create' on a control plane", len(s))
	}
	return Token{ID: m[1], Secret: m[2]}, nil
}

// Generate makes a new random token, with crypto/rand: about 82 bits of
// secret, as kubeadm's.
func Generate() (Token, error) {
	s, err := randomString(6 + 16)
	if err != nil {
		return Token{}, fmt.Errorf("generating a token: %w", err)
	}
	return Token{ID: s[:6], Secret: s[6:]}, nil
}

const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

// randomString draws n characters of alphabet uniformly: a random byte
// at or above the largest multiple of 36 is thrown away, not folded, so
// no character is likelier than another.
func randomString(n int) (string, error) {
	const limit = 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out), nil
}

// parseID accepts a token's ID, or the whole token (the secret is
// ignored): what a user has at hand.
func parseID(s string) (string, error) {
	s = strings.TrimSpace(s)
	if idRE.MatchString(s) {
		return s, nil
	}
	if t, err := Parse(s); err == nil {
		return t.ID, nil
	}
	return "", fmt.Errorf("%q is neither a token ID (6 lower-case letters or digits) nor a token (ID.SECRET): see 'dk8s token list'", s)
}
