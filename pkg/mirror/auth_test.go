package mirror

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// dockerConfig writes config.json into a fresh $DOCKER_CONFIG.
func dockerConfig(t *testing.T, cfg string) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// credentialHelper puts an executable docker-credential-NAME on the PATH
// that answers as the real helpers do: the JSON login for the servers in
// logins, "credentials not found" on stdout and exit 1 for the others. It
// appends each server address asked for to the returned file.
func credentialHelper(t *testing.T, name string, logins map[string]string) (asked string) {
	t.Helper()
	dir := t.TempDir()
	asked = filepath.Join(dir, "asked")
	var cases strings.Builder
	for server, userPass := range logins {
		user, pass, _ := strings.Cut(userPass, ":")
		out, _ := json.Marshal(map[string]string{"ServerURL": server, "Username": user, "Secret": pass})
		cases.WriteString("  '" + server + "') echo '" + string(out) + "' ;;\n")
	}
	script := "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread -r server\necho \"$server\" >>" + asked + "\ncase \"$server\" in\n" +
		cases.String() + "  *) echo 'credentials not found in native keychain'; exit 1 ;;\nesac\n"
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-"+name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return asked
}

func lookup(t *testing.T, c *DockerCredentials, host string) string {
	t.Helper()
	u, p, err := c.Lookup(host)
	if err != nil {
		t.Fatalf("Lookup(%s): %v", host, err)
	}
	return u + ":" + p
}

// 'docker login' files Docker Hub's login under its index; a pull of
// docker.io/flannel/flannel from the upstream mirror uses it.
func TestDockerCredentialsLookup(t *testing.T) {
	dockerConfig(t, `{"auths": {"https://index.docker.io/v1/": {"auth": "`+b64("hub:pw")+`"},
		"harbor.local:8443": {"auth": "`+b64("me:secret")+`"}}}`)
	c, err := LoadDockerCredentials(execRunner{})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{"docker.io": "hub:pw", "registry-1.docker.io": "hub:pw", "harbor.local:8443": "me:secret", "registry.k8s.io": ":"} {
		if got := lookup(t, c, host); got != want {
			t.Errorf("Lookup(%s) = %s, want %s", host, got, want)
		}
	}
}

// As docker does: credHelpers[host] first, else credsStore, and the file's
// own auths only without either; Docker Hub is asked for by its index URL.
func TestDockerCredentialsFromHelpers(t *testing.T) {
	storeAsked := credentialHelper(t, "store", map[string]string{"https://index.docker.io/v1/": "hub:fromstore", "harbor.local:8443": "me:fromstore"})
	ecrAsked := credentialHelper(t, "ecr", map[string]string{"123.dkr.ecr.local": "AWS:fromecr"})
	dockerConfig(t, `{"credsStore": "store", "credHelpers": {"123.dkr.ecr.local": "ecr"},
		"auths": {"harbor.local:8443": {}, "other.local": {"auth": "`+b64("ignored:byStore")+`"}}}`)
	c, err := LoadDockerCredentials(execRunner{})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{
		"docker.io":         "hub:fromstore",
		"harbor.local:8443": "me:fromstore",
		"123.dkr.ecr.local": "AWS:fromecr",
		"other.local":       ":", // the store holds nothing for it: anonymous, as docker
		"registry.k8s.io":   ":",
	} {
		if got := lookup(t, c, host); got != want {
			t.Errorf("Lookup(%s) = %s, want %s", host, got, want)
		}
	}
	lookup(t, c, "harbor.local:8443") // answered from memory: the helper runs once per host
	data, _ := os.ReadFile(storeAsked)
	if got, want := strings.Fields(string(data)), []string{"https://index.docker.io/v1/", "harbor.local:8443", "other.local", "registry.k8s.io"}; !sameSet(got, want) {
		t.Errorf("the store was asked for %q, want %q once each", got, want)
	}
	if data, _ := os.ReadFile(ecrAsked); strings.TrimSpace(string(data)) != "123.dkr.ecr.local" {
		t.Errorf("the ecr helper was asked for %q", data)
	}

	auth, err := c.EngineAuth("harbor.local:8443")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.URLEncoding.DecodeString(auth)
	if !strings.Contains(string(raw), `"password":"fromstore"`) || !strings.Contains(string(raw), `"serveraddress":"harbor.local:8443"`) {
		t.Errorf("EngineAuth = %s", raw)
	}
}

// A helper that is configured but missing or broken fails the lookup,
// saying which helper and what to do; it never turns into an anonymous
// pull. Hosts it is not configured for are unaffected.
func TestDockerCredentialsHelperFailures(t *testing.T) {
	dir := t.TempDir()
	broken := "#!/bin/sh\necho 'error getting credentials - err: exit status 1, out: `keychain locked`' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-broken"), []byte(broken), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	dockerConfig(t, `{"credHelpers": {"missing.local": "nosuchhelper", "broken.local": "broken"},
		"auths": {"plain.local": {"auth": "`+b64("u:p")+`"}}}`)
	c, err := LoadDockerCredentials(execRunner{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Lookup("missing.local")
	if !errors.Is(err, ErrCredentialHelper) {
		t.Errorf("a missing helper's error %v should be an ErrCredentialHelper, which is not retried", err)
	}
	for _, want := range []string{"docker-credential-nosuchhelper", "not on the PATH", "missing.local", "install it"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("a missing helper's error %v should say %q", err, want)
		}
	}
	_, err = c.EngineAuth("broken.local")
	for _, want := range []string{"docker-credential-broken", "broken.local", "keychain locked", "docker-credential-broken get"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("a failing helper's error %v should say %q", err, want)
		}
	}
	if got := lookup(t, c, "plain.local"); got != "u:p" {
		t.Errorf("plain.local = %s, want its auths login", got)
	}
	if got := lookup(t, c, "registry.k8s.io"); got != ":" {
		t.Errorf("a host with no entry = %s, want anonymous", got)
	}
}

func TestDockerCredentialsMissingOrBrokenConfig(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	c, err := LoadDockerCredentials(execRunner{})
	if err != nil || lookup(t, c, "docker.io") != ":" {
		t.Errorf("no config.json should mean anonymous, got %v", err)
	}
	dockerConfig(t, `{"auths": `)
	if _, err := LoadDockerCredentials(execRunner{}); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("a config.json that is not JSON should be reported, got %v", err)
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		if seen[s] != 1 {
			return false
		}
	}
	return true
}

// execRunner runs helpers for real, as host.Exec does (which this package
// cannot import: pkg/host imports it).
type execRunner struct{}

func (execRunner) Run(ctx context.Context, stdin io.Reader, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if msg := strings.TrimSpace(stderr.String()); err != nil && msg != "" {
		err = fmt.Errorf("%w: %s", err, msg)
	}
	return out, err
}
