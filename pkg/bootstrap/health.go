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

	"github.com/dk8s/dk8s/pkg/pki"
)

// Probe asks component for its health once, within timeout.
func Probe(ctx context.Context, p *pki.PKI, component string, timeout time.Duration) error {
	comp, err := componentNamed(component)
	if err != nil {
		return err
	}
	ep := comp.Health
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
	if ep.Body != "" && !strings.Contains(string(body), ep.Body) {
		return fmt.Errorf("%s: %s", ep.URL, strings.TrimSpace(string(body)))
	}
	return nil
}
