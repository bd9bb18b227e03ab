package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestResolveBearerIndex walks the path `dk8s images lock --from upstream`
// takes against registry.k8s.io: a Bearer challenge, an anonymous token, a
// multi-platform index, one manifest per platform asked for.
func TestResolveBearerIndex(t *testing.T) {
	const (
		index = "sha256:" + "1111111111111111111111111111111111111111111111111111111111111111"
		amd64 = "sha256:" + "2222222222222222222222222222222222222222222222222222222222222222"
		arm64 = "sha256:" + "3333333333333333333333333333333333333333333333333333333333333333"
		cfgA  = "sha256:" + "4444444444444444444444444444444444444444444444444444444444444444"
	)
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
			fmt.Fprintf(w, `{"mediaType":%q,"manifests":[
				{"digest":%q,"platform":{"os":"linux","architecture":"amd64"}},
				{"digest":%q,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
				{"digest":"sha256:5","platform":{"os":"unknown","architecture":"unknown"}}]}`, mediaOCIIndex, amd64, arm64)
		case amd64:
			fmt.Fprintf(w, `{"mediaType":%q,"config":{"digest":%q}}`, mediaOCIManifest, cfgA)
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
