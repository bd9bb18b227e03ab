package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/dk8s/dk8s/pkg/pki"
	"github.com/dk8s/dk8s/pkg/token"
)

// AdminClient connects to the apiserver of cfg's cluster as its admin,
// with the kubeconfig start wrote: a host that is not a control plane has
// none, and is told so.
func AdminClient(cfg Config) (kubernetes.Interface, error) {
	path := cfg.AdminKubeconfig()
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s does not exist: run this on a control plane, or make this host one with 'dk8s start'", path)
	}
	return clientFor(path)
}

// JoinToken is a new node token and what a worker needs beside it to join.
type JoinToken struct {
	token.Token
	// Server is the apiserver's URL, as cluster-info publishes it.
	Server string
	// CAHash pins the cluster CA (token.CAHash).
	CAHash string
}

// CreateJoinToken makes a node token valid for ttl (0: never expires) in
// the cluster of cfg that cs talks to, after publishing cluster-info for
// it (token.EnsureClusterInfo): the apiserver at the node's advertised
// address, and the cluster CA.
func CreateJoinToken(ctx context.Context, cs kubernetes.Interface, cfg Config, ttl time.Duration, description string) (JoinToken, error) {
	if err := cfg.Resolve(); err != nil {
		return JoinToken{}, err
	}
	p := &pki.PKI{Dir: cfg.PKIDir()}
	ca, err := p.Cert("ca")
	if err != nil {
		return JoinToken{}, fmt.Errorf("reading the cluster CA: %w (is this host a control plane? 'dk8s start' makes one)", err)
	}
	caPEM, err := os.ReadFile(p.Path("ca", ".crt"))
	if err != nil {
		return JoinToken{}, err
	}
	server := cfg.ClusterURL()
	if err := token.EnsureClusterInfo(ctx, cs, server, caPEM); err != nil {
		return JoinToken{}, err
	}
	tok, err := token.Create(ctx, cs, ttl, description)
	if err != nil {
		return JoinToken{}, err
	}
	return JoinToken{Token: tok, Server: server, CAHash: token.CAHash(ca)}, nil
}
