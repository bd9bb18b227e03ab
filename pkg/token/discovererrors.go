package token

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
)

// requestError says what a failed request means for a joining host, and
// what to do about it.
func requestError(ctx context.Context, host string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("discovering the cluster at %s: %w", host, ctx.Err())
	}
	var (
		hostname x509.HostnameError
		unknown  x509.UnknownAuthorityError
		record   tls.RecordHeaderError
		dns      *net.DNSError
		op       *net.OpError
		netErr   net.Error
	)
	switch {
	case errors.As(err, &hostname):
		return fmt.Errorf("the apiserver's certificate names %s, not %s: join at the address 'dk8s token create --print-join-command' prints on the control plane", certNames(hostname.Certificate), hostname.Host)
	case errors.As(err, &unknown):
		return fmt.Errorf("the server at %s presents a certificate the cluster CA did not sign, though cluster-info is genuine: something between this host and the control plane is intercepting the connection; do not join through it", host)
	case errors.As(err, &record), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		// net/http reports a plain-HTTP answer in words alone.
		return notAPIServer(host, "it does not speak TLS")
	case errors.As(err, &dns):
		return fmt.Errorf("%w: %s does not resolve (%v): check the control plane's address, or join at its IP address", ErrUnreachable, host, err)
	case errors.As(err, &op) && op.Op == "dial":
		return fmt.Errorf("%w at %s (%v): check the address and port (the apiserver listens on 6443), that the control plane is up ('dk8s ps' on it), and that no firewall between the two hosts blocks the port", ErrUnreachable, host, err)
	case errors.As(err, &netErr) && netErr.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %s did not answer within %s: check the address and port (the apiserver listens on 6443), that the control plane is up ('dk8s ps' on it), and that no firewall between the two hosts drops the traffic", ErrUnreachable, host, requestTimeout)
	}
	return fmt.Errorf("fetching cluster-info from %s: %w", host, err)
}

// statusError reads an apiserver's refusal to hand out cluster-info; an
// answer that is not an apiserver's Status means another server answered.
func statusError(host string, code int, body []byte) error {
	var st struct {
		Kind    string `json:"kind"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &st) != nil || st.Kind != "Status" {
		return notAPIServer(host, fmt.Sprintf("it answered %d %s to the cluster-info request", code, http.StatusText(code)))
	}
	switch code {
	case http.StatusNotFound:
		return fmt.Errorf("the control plane at %s publishes no cluster-info, so no host can join it yet: run 'dk8s token create' on it, which publishes it", host)
	case http.StatusUnauthorized:
		return fmt.Errorf("the apiserver at %s refuses requests without credentials (--anonymous-auth=false), so a join cannot read cluster-info: %s", host, st.Message)
	case http.StatusForbidden:
		return fmt.Errorf("the apiserver at %s does not let a joining host read cluster-info: run 'dk8s token create' on the control plane, which allows it (%s)", host, st.Message)
	}
	return fmt.Errorf("the apiserver at %s answered %d for cluster-info: %s", host, code, strings.TrimSpace(st.Message))
}

// certNames lists the names and addresses a serving certificate is for.
func certNames(c *x509.Certificate) string {
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "no host"
	}
	return strings.Join(names, ", ")
}
