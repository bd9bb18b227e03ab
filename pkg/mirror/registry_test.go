package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// TestResolveBearerIndex walks the path `dk8s images lock --from upstream`
// takes against registry.k8s.io: a Bearer challenge, an anonymous token, a
// multi-platform index, one manifest per platform asked for.
func TestResolveBearerIndex(t *testing.T) {
	const (
		arm64 = "sha256:" + "3333333333333333333333333333333333333333333333333333333333333333"
		cfgA  = "sha256:" + "4444444444444444444444444444444444444444444444444444444444444444"
	)
	// Digests are of the exact bytes served, as a registry's are.
	amd64Body := fmt.Sprintf(`{"mediaType":%q,"config":{"digest":%q}}`, mediaOCIManifest, cfgA)
	amd64 := sha(amd64Body)
	indexBody := fmt.Sprintf(`{"mediaType":%q,"manifests":[
		{"digest":%q,"platform":{"os":"linux","architecture":"amd64"}},
		{"digest":%q,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
		{"digest":"sha256:5","platform":{"os":"unknown","architecture":"unknown"}}]}`, mediaOCIIndex, amd64, arm64)
	index := sha(indexBody)
	var tokenScopes []string
	mux := http.NewServeMux()
	var srv *httptest.Server
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		tokenScopes = append(tokenScopes, r.URL.Query().Get("scope"))
		json.NewEncoder(w).Encode(map[string]string{"token": "t0k"})
	})
	mux.HandleFunc("/v2/pause/manifests/", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0k" {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test",scope="repository:pause:pull"`, srv.URL))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if !strings.Contains(r.Header.Get("Accept"), mediaOCIIndex) {
			t.Errorf("Accept %q should ask for an OCI index", r.Header.Get("Accept"))
		}
		switch ref := strings.TrimPrefix(r.URL.Path, "/v2/pause/manifests/"); ref {
		case "3.10.2":
			w.Header().Set("Docker-Content-Digest", index)
			io.WriteString(w, indexBody)
		case amd64:
			io.WriteString(w, amd64Body)
		default:
			t.Errorf("fetched %s, which was not asked for", ref)
			http.NotFound(w, r)
		}
	})
	srv = httptest.NewServer(mux)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://") // loopback: spoken to in plain HTTP

	res, err := (&Registry{}).Resolve(context.Background(), host+"/pause:3.10.2", []string{"linux/amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != index || len(res.Platforms) != 1 || res.Platforms["linux/amd64"] != (PlatformDigests{Manifest: amd64, Config: cfgA}) {
		t.Errorf("resolved %+v", res)
	}
	if len(tokenScopes) != 1 || tokenScopes[0] != "repository:pause:pull" {
		t.Errorf("token requests %v, want one for repository:pause:pull", tokenScopes)
	}
}

func TestResolveNotFound(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	_, err := (&Registry{}).Resolve(context.Background(), strings.TrimPrefix(srv.URL, "http://")+"/etcd:3.7.0-0", nil)
	if err == nil || !strings.Contains(err.Error(), "manifests/3.7.0-0 not found") {
		t.Errorf("got %v", err)
	}
}

// docker.io is only the name Docker Hub's images go by: `dk8s images lock
// --from upstream` asks Docker Hub's API host for flannel.
func TestResolveDockerHubAtItsAPIHost(t *testing.T) {
	var asked []string
	client := &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		asked = append(asked, r.URL.String())
		return &http.Response{StatusCode: http.StatusNotFound, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
	})}
	_, err := (&Registry{Client: client}).Resolve(context.Background(), "docker.io/flannel/flannel:v0.28.10", nil)
	want := "https://registry-1.docker.io/v2/flannel/flannel/manifests/v0.28.10"
	if err == nil || len(asked) != 1 || asked[0] != want {
		t.Errorf("asked %v (err %v), want %s", asked, err, want)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func sha(body string) string { return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(body))) }

// serveManifests serves the repository pause: each ref's body, with the
// Docker-Content-Digest header digests names for it (its sha256 by default;
// "-" for none).
func serveManifests(t *testing.T, bodies, digests map[string]string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ref := strings.TrimPrefix(r.URL.Path, "/v2/pause/manifests/")
		body, ok := bodies[ref]
		if !ok {
			http.NotFound(w, r)
			return
		}
		switch d := digests[ref]; d {
		case "":
			w.Header().Set("Docker-Content-Digest", sha(body))
		case "-":
		default:
			w.Header().Set("Docker-Content-Digest", d)
		}
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// A registry (or a mirror in the middle) that serves one manifest and
// names another in its header is refused: neither digest is recorded.
func TestResolveRefusesBodyThatDoesNotHashToItsDigest(t *testing.T) {
	cfg := "sha256:" + strings.Repeat("4", 64)
	manifest := fmt.Sprintf(`{"mediaType":%q,"config":{"digest":%q}}`, mediaOCIManifest, cfg)
	claimed := "sha256:" + strings.Repeat("9", 64)
	index := fmt.Sprintf(`{"mediaType":%q,"manifests":[{"digest":%q,"platform":{"os":"linux","architecture":"amd64"}}]}`, mediaOCIIndex, claimed)
	cases := map[string]struct {
		bodies, digests map[string]string
		want            []string
	}{
		"header names another digest": {
			bodies:  map[string]string{"3.10.2": manifest},
			digests: map[string]string{"3.10.2": claimed},
			want:    []string{"pause:3.10.2", sha(manifest), claimed},
		},
		"fetched by digest, served other content": {
			bodies:  map[string]string{"3.10.2": index, claimed: manifest},
			digests: map[string]string{claimed: "-"},
			want:    []string{claimed, sha(manifest)},
		},
		"fetched by digest, header agrees, body does not": {
			bodies:  map[string]string{"3.10.2": index, claimed: manifest},
			digests: map[string]string{claimed: claimed},
			want:    []string{claimed, sha(manifest)},
		},
	}
	for name, c := range cases {
		host := serveManifests(t, c.bodies, c.digests)
		_, err := (&Registry{}).Resolve(context.Background(), host+"/pause:3.10.2", []string{"linux/amd64"})
		for _, want := range append(c.want, "registry "+host) {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %v should name %s", name, err, want)
			}
		}
	}
}

// A manifest larger than dk8s reads is refused, not cut short and hashed.
func TestResolveRefusesOversizedManifest(t *testing.T) {
	cfg := "sha256:" + strings.Repeat("4", 64)
	// Valid JSON in its first 16 MiB, so cutting it short would go unseen.
	body := fmt.Sprintf(`{"mediaType":%q,"config":{"digest":%q}}`, mediaOCIManifest, cfg) + strings.Repeat(" ", 16<<20)
	host := serveManifests(t, map[string]string{"3.10.2": body}, map[string]string{"3.10.2": "-"})
	_, err := (&Registry{}).Resolve(context.Background(), host+"/pause:3.10.2", nil)
	if err == nil || !strings.Contains(err.Error(), "larger than 16 MiB") {
		t.Errorf("want the oversized manifest refused, got %v", err)
	}
}

// tokenService is a token realm that grants tokens, anonymous or not, and
// records the credentials it was sent.
type tokenService struct {
	srv       *httptest.Server
	anonymous bool // grant tokens without credentials
	got       []string
}

func newTokenService(t *testing.T, anonymous bool) *tokenService {
	ts := &tokenService{anonymous: anonymous}
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _, ok := r.BasicAuth()
		ts.got = append(ts.got, user)
		if !ok && !ts.anonymous {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"token": "t0k"})
	}))
	t.Cleanup(ts.srv.Close)
	return ts
}

// bearerRegistry serves pause:3.10.2 to holders of the token, and sends
// everyone else to realm.
func bearerRegistry(t *testing.T, realm string) string {
	config := `{"os":"linux","architecture":"amd64"}`
	body := fmt.Sprintf(`{"mediaType":%q,"config":{"digest":%q}}`, mediaOCIManifest, sha(config))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0k" {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test"`, realm))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if strings.HasSuffix(r.URL.Path, "/blobs/"+sha(config)) {
			io.WriteString(w, config)
			return
		}
		w.Header().Set("Docker-Content-Digest", sha(body))
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// The login for a registry goes to its token service only where that
// service is on the registry's own host; elsewhere dk8s asks anonymously.
func TestResolveSendsCredentialsOnlyToTheRegistrysHost(t *testing.T) {
	creds := func(string) (string, string, error) { return "alice", "secret", nil }

	// Same host name (127.0.0.1), another port: the login goes.
	own := newTokenService(t, false)
	host := bearerRegistry(t, own.srv.URL)
	if _, err := (&Registry{Credentials: creds}).Resolve(context.Background(), host+"/pause:3.10.2", nil); err != nil {
		t.Fatal(err)
	}
	if len(own.got) != 1 || own.got[0] != "alice" {
		t.Errorf("the registry's own token service should get the login, got %q", own.got)
	}

	// Another host name (localhost, though the same machine): anonymous.
	foreign := newTokenService(t, true)
	host = bearerRegistry(t, strings.Replace(foreign.srv.URL, "127.0.0.1", "localhost", 1))
	if _, err := (&Registry{Credentials: creds}).Resolve(context.Background(), host+"/pause:3.10.2", nil); err != nil {
		t.Fatal(err)
	}
	if len(foreign.got) != 1 || foreign.got[0] != "" {
		t.Errorf("a token service on another host should be asked anonymously, got %q", foreign.got)
	}

	// And when it wants a login, the error says why none was sent.
	foreign.anonymous = false
	_, err := (&Registry{Credentials: creds}).Resolve(context.Background(), host+"/pause:3.10.2", nil)
	for _, want := range []string{"registry " + host, "token service", "on another host", "not sent"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v should say %q", err, want)
		}
	}
	if slices.Contains(foreign.got, "alice") {
		t.Errorf("the login went to another host: %q", foreign.got)
	}
}
