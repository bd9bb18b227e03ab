package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// Registry reads manifests straight from a registry's HTTP API (no image is
// pulled): how `dk8s images lock` learns the digests a tag resolves to.
type Registry struct {
	// Client is the HTTP client; nil means http.DefaultClient.
	Client *http.Client
	// Credentials returns a user and password for host; nil or empty means
	// anonymous. Its error (a credential helper that cannot answer) fails
	// the request that needed the login.
	Credentials func(host string) (user, password string, err error)
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
	if host == DockerHub {
		host = dockerHubAPI
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
	if err := s.blob(ctx, body.Config.Digest, &cfg); err != nil {
		return Resolved{}, fmt.Errorf("reading the image config of %s: %w", ref, err)
	}
	if p := cfg.OS + "/" + cfg.Architecture; want(p) {
		out.Platforms[p] = PlatformDigests{Manifest: top, Config: body.Config.Digest}
	}
	return out, nil
}

// dockerHubAPI is where Docker Hub serves the registry API: docker.io is
// only the name its images go by.
const dockerHubAPI = "registry-1.docker.io"

// maxBodySize bounds the manifests, indexes and configs dk8s reads.
const maxBodySize = 16 << 20

type session struct {
	r          *Registry
	host, repo string
	token      string
	// withheld says why the login was not sent to the token service, when
	// it was not.
	withheld string
}

// manifest fetches the manifest or index ref (a tag or a digest) and
// returns its digest: the sha256 of the exact bytes served, which must be
// the digest asked for and the one the registry names, if it names one.
func (s *session) manifest(ctx context.Context, ref string) (string, manifest, error) {
	var m manifest
	accept := strings.Join([]string{mediaOCIIndex, mediaDockerList, mediaOCIManifest, mediaDockerSchema}, ", ")
	h, body, err := s.get(ctx, "/manifests/"+ref, accept)
	if err != nil {
		return "", m, err
	}
	what := s.repo + ":" + ref
	if isDigest(ref) {
		what = s.repo + "@" + ref
	}
	digest, err := s.contentDigest(what, ref, h.Get("Docker-Content-Digest"), body)
	if err != nil {
		return "", m, err
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return "", m, fmt.Errorf("registry %s: the manifest of %s: %w", s.host, what, err)
	}
	return digest, m, nil
}

// blob reads the JSON blob dgst into into, checking its content.
func (s *session) blob(ctx context.Context, dgst string, into any) error {
	h, body, err := s.get(ctx, "/blobs/"+dgst, "")
	if err != nil {
		return err
	}
	if _, err := s.contentDigest(s.repo+"@"+dgst, dgst, h.Get("Docker-Content-Digest"), body); err != nil {
		return err
	}
	return json.Unmarshal(body, into)
}

// contentDigest hashes body, what a registry served for what, and refuses
// it unless it hashes to the digest it was asked by (when asked is one) and
// to the one the registry's header names (when it names one): a digest dk8s
// records is always one it computed.
func (s *session) contentDigest(what, asked, header string, body []byte) (string, error) {
	sum := fmt.Sprintf("sha256:%x", sha256.Sum256(body))
	if isDigest(asked) && asked != sum {
		return "", fmt.Errorf("registry %s served content for %s that hashes to %s, not to the digest asked for: refusing it (the registry, or something between it and dk8s, altered it)", s.host, what, sum)
	}
	if header != "" && header != sum {
		return "", fmt.Errorf("registry %s says %s is %s (its Docker-Content-Digest), but what it served hashes to %s: refusing both (the registry, or something between it and dk8s, altered it)", s.host, what, header, sum)
	}
	return sum, nil
}

func isDigest(ref string) bool { return strings.HasPrefix(ref, "sha256:") }

// get fetches path of the repository, answering a Bearer challenge once.
func (s *session) get(ctx context.Context, path, accept string) (http.Header, []byte, error) {
	return s.do(ctx, http.MethodGet, path, accept)
}

// do sends method (GET, or HEAD for a manifest's existence) to path of the
// repository, answering a Bearer challenge once.
func (s *session) do(ctx context.Context, method, path, accept string) (http.Header, []byte, error) {
	u := fmt.Sprintf("%s://%s/v2/%s%s", scheme(s.host), s.host, s.repo, path)
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, u, nil)
		if err != nil {
			return nil, nil, err
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		if err := s.authorize(req); err != nil {
			return nil, nil, err
		}
		resp, err := s.client().Do(req)
		if err != nil {
			return nil, nil, err
		}
		// One byte past the limit tells a body that is too large from one
		// that fits exactly: a body cut short is never taken for whole.
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodySize+1))
		resp.Body.Close()
		if err != nil {
			return nil, nil, err
		}
		switch {
		case resp.StatusCode == http.StatusUnauthorized && attempt == 0:
			if err := s.login(ctx, resp.Header.Get("WWW-Authenticate")); err != nil {
				return nil, nil, err
			}
			continue
		case (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) && s.withheld != "":
			return nil, nil, fmt.Errorf("registry %s refused the anonymous token of %s (HTTP %d): %s", s.host, strings.TrimPrefix(path, "/"), resp.StatusCode, s.withheld)
		case resp.StatusCode == http.StatusNotFound:
			return nil, nil, fmt.Errorf("%s %w (HTTP 404)", strings.TrimPrefix(path, "/"), ErrNotFound)
		case resp.StatusCode != http.StatusOK:
			return nil, nil, fmt.Errorf("%s %s: HTTP %d: %.200s", method, u, resp.StatusCode, body)
		case len(body) > maxBodySize:
			return nil, nil, fmt.Errorf("registry %s: %s is larger than 16 MiB, more than dk8s reads: refusing it", s.host, strings.TrimPrefix(path, "/"))
		}
		return resp.Header, body, nil
	}
}

// ErrNotFound marks a manifest or blob the registry says it does not have.
var ErrNotFound = errors.New("not found")

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
