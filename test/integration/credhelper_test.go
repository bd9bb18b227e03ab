package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// A private mirror whose login Docker keeps in a credential helper, as
// Docker Desktop (credsStore) and cloud registries (credHelpers) do: the
// harness's registry behind a proxy that demands a Basic login, as a
// registry with htpasswd auth does, and docker-credential-dk8stest on the
// PATH holding that login.
func TestPullThroughCredentialHelper(t *testing.T) {
	engine, rel := harness(t)
	// refused counts the requests the mirror refused: without a login.
	var refused, admitted atomic.Int32
	private := newProxyMirror(t, func(w http.ResponseWriter, r *http.Request) bool {
		if user, pass, ok := r.BasicAuth(); ok && user == "dk8s" && pass == "s3cret" {
			admitted.Add(1)
			return false
		}
		refused.Add(1)
		w.Header().Set("WWW-Authenticate", `Basic realm="dk8s test registry"`)
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
		return true
	})
	host := private.addr

	bin := t.TempDir()
	helper := `#!/bin/sh
[ "$1" = get ] || exit 2
read -r server
if [ "$server" = "` + host + `" ]; then
  echo '{"ServerURL":"` + host + `","Username":"dk8s","Secret":"s3cret"}'
else
  echo 'credentials not found in native keychain'; exit 1
fi
`
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-dk8stest"), []byte(helper), 0o755); err != nil {
		t.Fatal(err)
	}
	config := t.TempDir()
	if err := os.WriteFile(filepath.Join(config, "config.json"), []byte(`{"credHelpers": {"`+host+`": "dk8stest"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	withHelper := []string{"DOCKER_CONFIG=" + config, "PATH=" + bin + ":" + os.Getenv("PATH"), "XDG_CACHE_HOME=" + t.TempDir()}

	t.Run("mirrors sees every tag with the helper's login", func(t *testing.T) {
		r := dk8s(t, withHelper, "mirrors", "--mirror", private.mirror())
		n := itoa(len(rel.Images))
		if cols := splitColumns(lineWith(r.stdout, private.mirror())); r.code != 0 || len(cols) != 5 || cols[1] != "yes" || cols[2] != n+"/"+n || cols[4] != "1" {
			t.Errorf("dk8s mirrors should show the private mirror with every tag:\n%s", r)
		}
	})

	t.Run("pull", func(t *testing.T) {
		clean(t, engine, rel)
		before := admitted.Load()
		r := dk8s(t, withHelper, "pull", "--mirror", private.mirror())
		if r.code != 0 {
			t.Fatalf("pull through the helper's login failed:\n%s", r)
		}
		assertComplete(t, engine, rel)
		for _, img := range rel.Images {
			if line := lineWith(r.stdout, img.Name); !strings.Contains(line, private.mirror()) || !strings.Contains(line, "pulled") {
				t.Errorf("%s should be pulled from the private mirror: %q", img.Name, line)
			}
		}
		if admitted.Load() == before {
			t.Error("the private mirror admitted no request with the helper's login")
		}
	})

	t.Run("a missing helper is named, not replaced by an anonymous pull", func(t *testing.T) {
		clean(t, engine, rel)
		noHelper := []string{"DOCKER_CONFIG=" + config, "XDG_CACHE_HOME=" + t.TempDir()}
		before := refused.Load()
		r := dk8s(t, noHelper, "pull", "--mirror", private.mirror())
		if n := refused.Load() - before; n != 0 {
			t.Errorf("with its helper missing, the pull asked the mirror without a login (%d requests refused)", n)
		}
		if r.code == 0 {
			t.Fatalf("pull should fail when the configured helper is not on the PATH:\n%s", r)
		}
		for _, want := range []string{"docker-credential-dk8stest", "not on the PATH", host} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr should say %q:\n%s", want, r.stderr)
			}
		}
	})

	t.Run("without a login the mirror refuses, and the error says to log in", func(t *testing.T) {
		clean(t, engine, rel)
		anonymous := []string{"DOCKER_CONFIG=" + t.TempDir(), "XDG_CACHE_HOME=" + t.TempDir()}
		before := refused.Load()
		r := dk8s(t, anonymous, "pull", "--mirror", private.mirror())
		if refused.Load() == before {
			t.Error("the anonymous pull should have been refused by the mirror, which refused nothing")
		}
		if r.code == 0 || !strings.Contains(r.stderr, "docker login") {
			t.Errorf("an anonymous pull from the private mirror should fail and say to log in:\n%s", r)
		}
	})
}
