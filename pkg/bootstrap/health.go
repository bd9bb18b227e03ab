package bootstrap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/dk8s/dk8s/pkg/host"
)

// Endpoint is where a component answers for its health.
type Endpoint struct {
	URL string
	// Cert names the PKI client certificate to present; "" for none.
	Cert string
	// CA names the PKI CA that signed the serving certificate; "" where the
	// component serves a self-signed certificate it made in memory (the
	// controller-manager and scheduler), checked for liveness only.
	CA string
}

// Endpoints of the control plane's health checks, the ones kubeadm waits
// on.
var Endpoints = map[string]Endpoint{
	"etcd":                    {URL: "https://127.0.0.1:2379/health", Cert: "etcd/healthcheck-client", CA: "etcd/ca"},
	"kube-apiserver":          {URL: "https://127.0.0.1:6443/readyz", Cert: "admin", CA: "ca"},
	"kube-controller-manager": {URL: "https://127.0.0.1:10257/healthz"},
	"kube-scheduler":          {URL: "https://127.0.0.1:10259/healthz"},
	"kubelet":                 {URL: "http://127.0.0.1:10248/healthz"},
	"containerd":              {URL: "unix://" + host.RuntimeSocket},
}

// Probe asks component for its health once, within timeout.
func Probe(ctx context.Context, p *PKI, component string, timeout time.Duration) error {
	ep, ok := Endpoints[component]
	if !ok {
		return fmt.Errorf("no health endpoint for %s", component)
	}
	if sock, ok := strings.CutPrefix(ep.URL, "unix://"); ok {
		// The runtime answers on its socket: a connection is its health.
		c, err := net.DialTimeout("unix", sock, timeout)
		if err != nil {
			return err
		}
		return c.Close()
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ep.CA == "" {
		// Health only: nothing is sent but the request, and the answer is
		// trusted for nothing else.
		tlsCfg.InsecureSkipVerify = true
	} else {
		pem, err := os.ReadFile(p.Path(ep.CA, ".crt"))
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tlsCfg.RootCAs = pool
	}
	if ep.Cert != "" {
		pair, err := tls.LoadX509KeyPair(p.Path(ep.Cert, ".crt"), p.Path(ep.Cert, ".key"))
		if err != nil {
			return err
		}
		tlsCfg.Certificates = []tls.Certificate{pair}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.URL, nil)
	if err != nil {
		return err
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d: %s", ep.URL, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if component == "etcd" && !strings.Contains(string(body), `"health":"true"`) {
		return fmt.Errorf("%s: %s", ep.URL, strings.TrimSpace(string(body)))
	}
	return nil
}

// WaitHealthy probes component every half second until it answers healthy,
// ctx ends, or timeout passes; it returns the last probe's error.
func WaitHealthy(ctx context.Context, p *PKI, component string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	var last error
	for {
		if last = Probe(ctx, p, component, 2*time.Second); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy after %s: %w", component, timeout, last)
		case <-t.C:
		}
	}
}
