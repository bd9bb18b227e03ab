package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Registry reads manifests straight from a registry's HTTP API (no image is
// pulled): how `dk8s images lock` learns the digests a tag resolves to.
type Registry struct {
	// Client is the HTTP client; nil means http.DefaultClient.
	Client *http.Client
	// Credentials returns a user and password for host; nil or empty means
	// anonymous.
	Credentials func(host string) (user, password string)
}

// Resolved is what a tag resolves to: its top digest (an index for a
// multi-platform image) and, per "os/arch", the manifest and config digests.
type Resolved struct {
	Digest    string
	Platforms map[string]PlatformDigests
}

// PlatformDigests identify one platform's image.
type PlatformDigests struct {
	Manifest string
	Config   string
}

const (
	mediaOCIIndex     = "application/vnd.oci.image.index.v1+json"
	mediaDockerList   = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaOCIManifest  = "application/vnd.oci.image.manifest.v1+json"
	mediaDockerSchema = "application/vnd.docker.distribution.manifest.v2+json"
)

type manifest struct {
	MediaType string `json:"mediaType"`
	Config    struct {
		Digest string `json:"digest"`
	} `json:"config"`
	Manifests []struct {
		Digest   string `json:"digest"`
		Platform struct {
			OS           string `json:"os"`
			Architecture string `json:"architecture"`
			Variant      string `json:"variant"`
		} `json:"platform"`
	} `json:"manifests"`
}

// Resolve reads what ref (HOST/PATH:TAG) resolves to, for the platforms
// asked (all of them when none is).
func (r *Registry) Resolve(ctx context.Context, ref string, platforms []string) (Resolved, error) {
	host, repo, tag, err := splitRef(ref)
	if err != nil {
		return Resolved{}, err
	}
	s := &session{r: r, host: host, repo: repo}
	top, body, err := s.manifest(ctx, tag)
	if err != nil {
		return Resolved{}, fmt.Errorf("resolving %s: %w", ref, err)
	}
	out := Resolved{Digest: top, Platforms: map[string]PlatformDigests{}}
	want := func(p string) bool { return len(platforms) == 0 || contains(platforms, p) }
	if len(body.Manifests) > 0 {
		for _, m := range body.Manifests {
			p := m.Platform.OS + "/" + m.Platform.Architecture
			if m.Platform.Variant != "" && m.Platform.Architecture != "arm64" {
				p += "/" + m.Platform.Variant
			}
			if m.Platform.OS == "unknown" || !want(p) {
				continue // attestations, and platforms not asked for
			}
			_, pm, err := s.manifest(ctx, m.Digest)
			if err != nil {
				return Resolved{}, fmt.Errorf("resolving %s for %s: %w", ref, p, err)
			}
			out.Platforms[p] = PlatformDigests{Manifest: m.Digest, Config: pm.Config.Digest}
		}
		return out, nil
	}
	var cfg struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	}
	if err := s.getJSON(ctx, "/blobs/"+body.Config.Digest, "", &cfg, nil); err != nil {
		return Resolved{}, fmt.Errorf("reading the image config of %s: %w", ref, err)
	}
	if p := cfg.OS + "/" + cfg.Architecture; want(p) {
		out.Platforms[p] = PlatformDigests{Manifest: top, Config: body.Config.Digest}
	}
	return out, nil
}

type session struct {
	r          *Registry
	host, repo string
	token      string
}

func (s *session) manifest(ctx context.Context, ref string) (string, manifest, error) {
	var m manifest
	var digest string
	accept := strings.Join([]string{mediaOCIIndex, mediaDockerList, mediaOCIManifest, mediaDockerSchema}, ", ")
	err := s.getJSON(ctx, "/manifests/"+ref, accept, &m, func(h http.Header, body []byte) {
		digest = h.Get("Docker-Content-Digest")
		if digest == "" {
			digest = fmt.Sprintf("sha256:%x", sha256.Sum256(body))
		}
	})
	return digest, m, err
}

func (s *session) getJSON(ctx context.Context, path, accept string, into any, seen func(http.Header, []byte)) error {
	u := fmt.Sprintf("%s://%s/v2/%s%s", scheme(s.host), s.host, s.repo, path)
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		s.authorize(req)
		resp, err := s.client().Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 {
			if err := s.login(ctx, resp.Header.Get("WWW-Authenticate")); err != nil {
				return err
			}
			continue
		}
		if resp.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%s not found (HTTP 404)", strings.TrimPrefix(path, "/"))
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: HTTP %d: %.200s", u, resp.StatusCode, body)
		}
		if seen != nil {
			seen(resp.Header, body)
		}
		return json.Unmarshal(body, into)
	}
}

func (s *session) authorize(req *http.Request) {
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
		return
	}
	if user, pass := s.creds(); user != "" {
		req.SetBasicAuth(user, pass)
	}
}

// login answers a Bearer challenge with a token from the registry's token
// service, anonymously or with the configured credentials.
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
	q := url.Values{}
	q.Set("service", p["service"])
	scope := p["scope"]
	if scope == "" {
		scope = "repository:" + s.repo + ":pull"
	}
	q.Set("scope", scope)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p["realm"]+"?"+q.Encode(), nil)
	if err != nil {
		return fmt.Errorf("registry %s: bad token realm %q: %w", s.host, p["realm"], err)
	}
	if user, pass := s.creds(); user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := s.client().Do(req)
	if err != nil {
		return fmt.Errorf("getting a token from %s: %w", p["realm"], err)
	}
	defer resp.Body.Close()
	var tok struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("registry %s refused a token (HTTP %d): for a private registry, 'docker login %s' first", s.host, resp.StatusCode, s.host)
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		return fmt.Errorf("reading a token from %s: %w", p["realm"], err)
	}
	s.token = tok.Token
	if s.token == "" {
		s.token = tok.AccessToken
	}
	return nil
}

func (s *session) creds() (string, string) {
	if s.r.Credentials == nil {
		return "", ""
	}
	return s.r.Credentials(s.host)
}

func (s *session) client() *http.Client {
	if s.r.Client != nil {
		return s.r.Client
	}
	return http.DefaultClient
}

// scheme follows Docker: registries on loopback are spoken to in plain
// HTTP, every other one over TLS.
func scheme(host string) string {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if h == "localhost" {
		return "http"
	}
	if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil && ip.IsLoopback() {
		return "http"
	}
	return "https"
}

func splitRef(ref string) (host, repo, tag string, err error) {
	host, rest, ok := strings.Cut(ref, "/")
	colon := strings.LastIndex(rest, ":")
	if !ok || colon <= 0 {
		return "", "", "", fmt.Errorf("image %q must be HOST/PATH:TAG", ref)
	}
	return host, rest[:colon], rest[colon+1:], nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
