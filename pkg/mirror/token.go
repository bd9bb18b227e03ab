package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// The registry token flow: a Bearer challenge answered from the token
// service, with credentials only for a realm on the registry's own host.

func (s *session) authorize(req *http.Request) error {
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
		return nil
	}
	user, pass, err := s.creds()
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	return err
}

// login answers a Bearer challenge with a token from the registry's token
// service: with the configured credentials where that service is the
// registry's own (see withholdLogin), anonymously otherwise.
func (s *session) login(ctx context.Context, challenge string) error {
	scheme, params, _ := strings.Cut(challenge, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return fmt.Errorf("registry %s wants %s authentication: log in to it with 'docker login %s'", s.host, scheme, s.host)
	}
	p := map[string]string{}
	for _, kv := range strings.Split(params, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		p[k] = strings.Trim(v, `"`)
	}
	realm, err := url.Parse(p["realm"])
	if err != nil || realm.Host == "" || (realm.Scheme != "https" && realm.Scheme != "http") {
		return fmt.Errorf("registry %s: bad token realm %q in its challenge", s.host, p["realm"])
	}
	q := realm.Query()
	q.Set("service", p["service"])
	scope := p["scope"]
	if scope == "" {
		scope = "repository:" + s.repo + ":pull"
	}
	q.Set("scope", scope)
	realm.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return fmt.Errorf("registry %s: bad token realm %q: %w", s.host, p["realm"], err)
	}
	user, pass, err := s.creds()
	if err != nil {
		return err
	}
	if user != "" {
		switch why := s.withholdLogin(realm); why {
		case "":
			req.SetBasicAuth(user, pass)
		default:
			s.withheld = fmt.Sprintf("its token service %s %s, so the login for %s was not sent to it; "+
				"resolve on a registry that needs no login, or whose token service is on its own host over TLS", realm.Host, why, s.host)
		}
	}
	resp, err := s.client().Do(req)
	if err != nil {
		return fmt.Errorf("getting a token from %s: %w", realm.Host, err)
	}
	defer resp.Body.Close()
	var tok struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK {
		if s.withheld != "" {
			return fmt.Errorf("registry %s refused an anonymous token (HTTP %d): %s", s.host, resp.StatusCode, s.withheld)
		}
		return fmt.Errorf("registry %s refused a token (HTTP %d): for a private registry, 'docker login %s' first", s.host, resp.StatusCode, s.host)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tok); err != nil {
		return fmt.Errorf("reading a token from %s: %w", realm.Host, err)
	}
	s.token = tok.Token
	if s.token == "" {
		s.token = tok.AccessToken
	}
	return nil
}

// withholdLogin says why the registry's login may not go to the token
// service at realm, or "" when it may: only to the registry's own host name,
// and over TLS unless the registry itself is spoken to in plain HTTP (on
// loopback). The port may differ: token services commonly listen on a port
// of their own beside the registry (a registry on :5000, its auth server on
// :5001), the host name is what TLS vouches for, and whoever holds that name
// is sent the login on the registry's port anyway. Another host name, even
// one in the same domain, is another party.
func (s *session) withholdLogin(realm *url.URL) string {
	switch {
	case !strings.EqualFold(realm.Hostname(), hostname(s.host)):
		return "is on another host"
	case realm.Scheme != "https" && scheme(s.host) != "http":
		return "is not on TLS"
	}
	return ""
}

// hostname is host without its port.
func hostname(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return strings.Trim(host, "[]")
}

func (s *session) creds() (string, string, error) {
	if s.r.Credentials == nil {
		return "", "", nil
	}
	return s.r.Credentials(s.host)
}
