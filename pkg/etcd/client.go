package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// DefaultEndpoint is where a dk8s control plane's etcd serves clients: on
// loopback only.
const DefaultEndpoint = "https://127.0.0.1:2379"

// API is what this package asks of an etcd client; *clientv3.Client has
// all of it, and a unit test's fake embeds API and overrides what it needs.
type API interface {
	MemberList(ctx context.Context, opts ...clientv3.OpOption) (*clientv3.MemberListResponse, error)
	MemberAddAsLearner(ctx context.Context, peerAddrs []string) (*clientv3.MemberAddResponse, error)
	MemberPromote(ctx context.Context, id uint64) (*clientv3.MemberPromoteResponse, error)
	MemberRemove(ctx context.Context, id uint64) (*clientv3.MemberRemoveResponse, error)
	MemberUpdate(ctx context.Context, id uint64, peerAddrs []string) (*clientv3.MemberUpdateResponse, error)
	Status(ctx context.Context, endpoint string) (*clientv3.StatusResponse, error)
	AlarmList(ctx context.Context) (*clientv3.AlarmResponse, error)
	AlarmDisarm(ctx context.Context, m *clientv3.AlarmMember) (*clientv3.AlarmResponse, error)
	Defragment(ctx context.Context, endpoint string) (*clientv3.DefragmentResponse, error)
	Compact(ctx context.Context, rev int64, opts ...clientv3.CompactOption) (*clientv3.CompactResponse, error)
	SnapshotWithVersion(ctx context.Context) (*clientv3.SnapshotResponse, error)
}

// TLSFiles are the PEM files a client proves itself with: the etcd CA
// that signed the servers' certificates, and a client certificate and key
// that CA signed.
type TLSFiles struct {
	CA, Cert, Key string
}

// PKIFiles are the files of a cluster's PKI directory (DIR/pki) the
// apiserver reaches etcd with: the etcd CA and apiserver-etcd-client.
func PKIFiles(pkiDir string) TLSFiles {
	return TLSFiles{
		CA:   filepath.Join(pkiDir, "etcd", "ca.crt"),
		Cert: filepath.Join(pkiDir, "apiserver-etcd-client.crt"),
		Key:  filepath.Join(pkiDir, "apiserver-etcd-client.key"),
	}
}

// Client is a connection to an etcd cluster through some of its
// members' client URLs.
type Client struct {
	api       API
	endpoints []string
	close     func() error
}

// New connects to etcd at endpoints (DefaultEndpoint when none) with the
// TLS files. The connection is made lazily: an etcd that does not answer
// fails the first call, within that call's context.
func New(ctx context.Context, endpoints []string, files TLSFiles) (*Client, error) {
	if len(endpoints) == 0 {
		endpoints = []string{DefaultEndpoint}
	}
	tlsCfg, err := files.config()
	if err != nil {
		return nil, err
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		TLS:         tlsCfg,
		DialTimeout: 5 * time.Second,
		Context:     ctx,
		// The client's own logger writes to stderr; a library prints nothing.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd at %v: %w", endpoints, err)
	}
	return &Client{api: c, endpoints: endpoints, close: c.Close}, nil
}

// NewFromAPI wraps an API that is already connected (a fake in tests, or a
// caller's own client) reached at endpoints.
func NewFromAPI(api API, endpoints []string) *Client {
	if len(endpoints) == 0 {
		endpoints = []string{DefaultEndpoint}
	}
	return &Client{api: api, endpoints: endpoints, close: func() error { return nil }}
}

// Close closes the connection.
func (c *Client) Close() error { return c.close() }

// Endpoints are the client URLs the client was made for.
func (c *Client) Endpoints() []string { return c.endpoints }

func (f TLSFiles) config() (*tls.Config, error) {
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("reading etcd's CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no PEM certificate", f.CA)
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("reading the etcd client certificate: %w", err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}
