package token

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
)

// The Secret format of k8s.io/cluster-bootstrap/token/api, which the
// apiserver's token authenticator, the bootstrapsigner and the
// tokencleaner read.
const (
	secretNamespace = "kube-system"
	secretPrefix    = "bootstrap-token-"
	secretType      = corev1.SecretType("bootstrap.kubernetes.io/token")
	keyID           = "token-id"
	keySecret       = "token-secret"
	keyExpiration   = "expiration"
	keyDescription  = "description"
	keyGroups       = "auth-extra-groups"
	usagePrefix     = "usage-bootstrap-"
)

// usages are what a node token is for: authenticating the join's requests,
// and signing cluster-info so the joining host can trust the CA.
var usages = []string{"authentication", "signing"}

var managed = map[string]string{"app.kubernetes.io/managed-by": "dk8s"}

// Create makes a new node token in the cluster cs talks to, valid for ttl
// (0: it never expires) and in Group. It is a Secret in kube-system; the
// bootstrapsigner adds its signature to cluster-info within moments.
func Create(ctx context.Context, cs kubernetes.Interface, ttl time.Duration, description string) (Token, error) {
	return createToken(ctx, cs, ttl, description, usages, []string{Group})
}

// CreateOwner makes a token that authenticates nothing and signs nothing,
// valid for ttl: an owner for objects that must go when it expires (the
// tokencleaner deletes it, the garbage collector what it owns), as kubeadm
// owns its sealed certificates.
func CreateOwner(ctx context.Context, cs kubernetes.Interface, ttl time.Duration, description string) (Token, error) {
	if ttl <= 0 {
		return Token{}, fmt.Errorf("an owner token must expire: %s", ttl)
	}
	return createToken(ctx, cs, ttl, description, nil, nil)
}

func createToken(ctx context.Context, cs kubernetes.Interface, ttl time.Duration, description string, usages, groups []string) (Token, error) {
	if ttl < 0 {
		return Token{}, fmt.Errorf("a token's time to live cannot be negative (%s): pass 0 for a token that never expires", ttl)
	}
	// Three draws: an ID already taken (one in two billion) is drawn again
	// rather than reported.
	for range 3 {
		t, err := Generate()
		if err != nil {
			return Token{}, err
		}
		t.Usages, t.Groups, t.Description = usages, groups, description
		if ttl > 0 {
			t.Expires = time.Now().Add(ttl).UTC().Truncate(time.Second)
		}
		_, err = cs.CoreV1().Secrets(secretNamespace).Create(ctx, secretOf(t), metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			continue
		}
		if err != nil {
			return Token{}, fmt.Errorf("creating the token's secret in %s: %w", secretNamespace, err)
		}
		return t, nil
	}
	return Token{}, errors.New("creating a token: three random token IDs were all taken; try again")
}

// secretOf is t as the apiserver reads it.
func secretOf(t Token) *corev1.Secret {
	data := map[string][]byte{
		keyID:     []byte(t.ID),
		keySecret: []byte(t.Secret),
	}
	if len(t.Groups) > 0 {
		data[keyGroups] = []byte(strings.Join(t.Groups, ","))
	}
	if t.Description != "" {
		data[keyDescription] = []byte(t.Description)
	}
	if !t.Expires.IsZero() {
		data[keyExpiration] = []byte(t.Expires.UTC().Format(time.RFC3339))
	}
	for _, u := range t.Usages {
		data[usagePrefix+u] = []byte("true")
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: secretPrefix + t.ID, Namespace: secretNamespace, Labels: managed},
		Type:       secretType,
		Data:       data,
	}
}

// List returns the cluster's bootstrap tokens, dk8s's and any other's
// (kubeadm's), soonest to expire first and those that never expire last.
// Expired tokens are listed too: the tokencleaner deletes them, but not at
// once. A Secret the apiserver would not accept as a token is left out.
func List(ctx context.Context, cs kubernetes.Interface) ([]Token, error) {
	list, err := cs.CoreV1().Secrets(secretNamespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("type", string(secretType)).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("listing the tokens (secrets in %s): %w", secretNamespace, err)
	}
	var out []Token
	for i := range list.Items {
		if t, ok := tokenOf(&list.Items[i]); ok {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b Token) int {
		switch {
		case a.Expires.Equal(b.Expires):
			return strings.Compare(a.ID, b.ID)
		case a.Expires.IsZero():
			return 1
		case b.Expires.IsZero():
			return -1
		}
		return a.Expires.Compare(b.Expires)
	})
	return out, nil
}

// tokenOf reads a token Secret as the apiserver does: of the bootstrap
// type, named after a well-formed ID, with a well-formed secret.
func tokenOf(s *corev1.Secret) (Token, bool) {
	t := Token{ID: string(s.Data[keyID]), Secret: string(s.Data[keySecret]), Description: string(s.Data[keyDescription])}
	if s.Type != secretType || s.Name != secretPrefix+t.ID || !tokenRE.MatchString(t.String()) {
		return Token{}, false
	}
	if exp, ok := s.Data[keyExpiration]; ok {
		var err error
		if t.Expires, err = time.Parse(time.RFC3339, string(exp)); err != nil {
			// The apiserver takes an expiration it cannot read as past.
			t.Expires = time.Unix(0, 0).UTC()
		}
	}
	for k, v := range s.Data {
		if u, ok := strings.CutPrefix(k, usagePrefix); ok && string(v) == "true" {
			t.Usages = append(t.Usages, u)
		}
	}
	slices.Sort(t.Usages)
	for g := range strings.SplitSeq(string(s.Data[keyGroups]), ",") {
		if g = strings.TrimSpace(g); g != "" {
			t.Groups = append(t.Groups, g)
		}
	}
	return t, true
}

// Delete deletes the token id names (its ID, or the whole ID.SECRET): no
// host can join with it any more. A host that already joined keeps its
// own credentials.
func Delete(ctx context.Context, cs kubernetes.Interface, id string) error {
	id, err := parseID(id)
	if err != nil {
		return err
	}
	err = cs.CoreV1().Secrets(secretNamespace).Delete(ctx, secretPrefix+id, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("there is no token %s (it may have expired and been cleaned up): see 'dk8s token list'", id)
	}
	if err != nil {
		return fmt.Errorf("deleting token %s: %w", id, err)
	}
	return nil
}
