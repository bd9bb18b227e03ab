package token

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
)

// ClusterInfo is what DiscoverClusterInfo learns of a cluster, verified.
type ClusterInfo struct {
	// Server is the apiserver's URL as cluster-info names it (the control
	// plane's advertised address), which may differ from the address the
	// joining host reached it at.
	Server string
	// CAPEM is the cluster CA bundle, pinned and proven.
	CAPEM []byte
}

// Errors a caller may retry on: a control plane still starting, a token
// made a moment ago that the bootstrapsigner has not signed yet.
var (
	ErrUnreachable = errors.New("the control plane cannot be reached")
	ErrNoSignature = errors.New("cluster-info has no signature for the token")
)

// requestTimeout bounds each request of a discovery: an apiserver answers
// cluster-info at once or not at all.
var requestTimeout = 10 * time.Second

// Discover is DiscoverClusterInfo for a caller that needs the CA alone.
func Discover(ctx context.Context, server string, tok Token, pins []string) (caPEM []byte, err error) {
	info, err := DiscoverClusterInfo(ctx, server, tok, pins)
	return info.CAPEM, err
}

// DiscoverClusterInfo learns the CA of the apiserver at server
// (https://HOST:PORT; the scheme and :6443 may be left out) without
// trusting it first, as kubeadm does: it fetches cluster-info without
// checking the server's certificate, checks the bootstrapsigner's detached
// signature of it for tok (only a holder of tok's secret can make it),
// checks that the CA it names has one of the public-key hashes pins (at
// least one is needed), then fetches cluster-info again over TLS verified by
// that CA and checks it is the same (a man in the middle cannot serve the
// second). Each request gives up after 10 seconds.
func DiscoverClusterInfo(ctx context.Context, server string, tok Token, pins []string) (ClusterInfo, error) {
	base, err := serverURL(server)
	if err != nil {
		return ClusterInfo{}, err
	}
	if _, err := Parse(tok.String()); err != nil {
		return ClusterInfo{}, err
	}
	wanted, err := parsePins(pins)
	if err != nil {
		return ClusterInfo{}, err
	}
	first, err := fetchClusterInfo(ctx, base, nil)
	if err != nil {
		return ClusterInfo{}, err
	}
	kc, err := verifySigned(first, tok, base.Host)
	if err != nil {
		return ClusterInfo{}, err
	}
	info, cas, err := readClusterInfo(kc, base.Host)
	if err != nil {
		return ClusterInfo{}, err
	}
	if err := checkPinned(cas, wanted, base.Host); err != nil {
		return ClusterInfo{}, err
	}
	roots := x509.NewCertPool()
	for _, c := range cas {
		roots.AddCert(c)
	}
	second, err := fetchClusterInfo(ctx, base, roots)
	if err != nil {
		return ClusterInfo{}, err
	}
	if second.Data[kubeconfigKey] != kc {
		return ClusterInfo{}, fmt.Errorf("cluster-info at %s changed between its unverified and its verified fetch: try again; if this keeps happening, something between this host and the control plane is answering for it", base.Host)
	}
	return info, nil
}

// readClusterInfo reads cluster-info's kubeconfig: the cluster of its
// current context, or its only cluster, with a server and a CA.
func readClusterInfo(kc, host string) (ClusterInfo, []*x509.Certificate, error) {
	bad := func(why string) error {
		return fmt.Errorf("the kubeconfig in cluster-info at %s is unusable: %s", host, why)
	}
	cfg, err := clientcmd.Load([]byte(kc))
	if err != nil {
		return ClusterInfo{}, nil, bad(err.Error())
	}
	cluster := cfg.Clusters[""]
	if ctx, ok := cfg.Contexts[cfg.CurrentContext]; ok {
		cluster = cfg.Clusters[ctx.Cluster]
	} else if len(cfg.Clusters) == 1 {
		for _, c := range cfg.Clusters {
			cluster = c
		}
	}
	if cluster == nil || cluster.Server == "" || len(cluster.CertificateAuthorityData) == 0 {
		return ClusterInfo{}, nil, bad("it names no single cluster with a server and a CA")
	}
	cas, err := parseCertsPEM(cluster.CertificateAuthorityData)
	if err != nil {
		return ClusterInfo{}, nil, bad("its CA: " + err.Error())
	}
	return ClusterInfo{Server: cluster.Server, CAPEM: cluster.CertificateAuthorityData}, cas, nil
}

// checkPinned passes when every one of cas has one of the wanted hashes,
// as kubeadm's discovery requires: a bundle of several CAs (a rotation
// under way) is trusted whole, so one unpinned CA in it would be trusted
// on the strength of another's pin.
func checkPinned(cas []*x509.Certificate, wanted map[string]bool, host string) error {
	var unpinned []string
	for _, c := range cas {
		if h := CAHash(c); !wanted[h] {
			unpinned = append(unpinned, h)
		}
	}
	switch {
	case len(unpinned) == 0:
		return nil
	case len(unpinned) < len(cas):
		return fmt.Errorf("the cluster CA bundle at %s holds %d CAs, and %s not among the hashes given: give each with --ca-cert-hash ('dk8s token create --print-join-command' on the control plane prints them), or do not join it",
			host, len(cas), strings.Join(unpinned, ", "))
	}
	return fmt.Errorf("the cluster CA at %s has the hash %s, not the one given: get the right one with 'dk8s token create --print-join-command' on the control plane; if you are sure you have it, another host is answering at %s: do not join it",
		host, strings.Join(unpinned, ", "), host)
}

// serverURL reads the control plane's address: https://HOST:PORT, where
// a bare HOST[:PORT] means https and a missing port the apiserver's 6443.
func serverURL(server string) (*url.URL, error) {
	s := strings.TrimSpace(server)
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" {
		return nil, fmt.Errorf("the control plane's address %q is not https://HOST:PORT (its apiserver's, such as https://192.0.2.10:6443)", server)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "6443")
	}
	return &url.URL{Scheme: "https", Host: host}, nil
}

// parsePins reads the CA hashes a join is given: one at least, since
// without one whoever answers at the address could hand over its own CA.
func parsePins(pins []string) (map[string]bool, error) {
	if len(pins) == 0 {
		return nil, errors.New("no CA hash given: a join needs the cluster CA's hash to know it reached the real control plane; get it with 'dk8s token create --print-join-command' on the control plane")
	}
	out := map[string]bool{}
	for _, p := range pins {
		h, err := ParseHash(p)
		if err != nil {
			return nil, err
		}
		out[h] = true
	}
	return out, nil
}

// fetchClusterInfo gets cluster-info from base, as the anonymous user.
// With roots nil the server's certificate is not checked: nothing read
// then is trusted until its signature and the CA's pin are.
func fetchClusterInfo(ctx context.Context, base *url.URL, roots *x509.CertPool) (*corev1.ConfigMap, error) {
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     &tls.Config{RootCAs: roots, InsecureSkipVerify: roots == nil, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: requestTimeout,
	}
	defer tr.CloseIdleConnections()
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	u := base.JoinPath("api/v1/namespaces", clusterInfoNamespace, "configmaps", clusterInfoName)
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, requestError(ctx, base.Host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err == nil {
		// An answer that raced the deadline is not taken.
		err = rctx.Err()
	}
	if err != nil {
		return nil, requestError(ctx, base.Host, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(base.Host, resp.StatusCode, body)
	}
	var cm corev1.ConfigMap
	if err := json.Unmarshal(body, &cm); err != nil || cm.Kind != "ConfigMap" || cm.Name != clusterInfoName {
		return nil, notAPIServer(base.Host, "its answer for cluster-info is not a ConfigMap")
	}
	return &cm, nil
}

func notAPIServer(host, why string) error {
	return fmt.Errorf("%s is not a Kubernetes apiserver (%s): check the address and port of the control plane's apiserver (6443)", host, why)
}
