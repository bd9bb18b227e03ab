package mirror

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// DockerCredentials are the logins `docker login` stored for Docker's
// client ($DOCKER_CONFIG/config.json, else ~/.docker/config.json), so that a
// private mirror needs no other setup. As docker does, a host's login comes
// from its credential helper in credHelpers, else from the credsStore
// helper, else from the file's own auths; a helper is the program
// docker-credential-NAME on the PATH.
type DockerCredentials struct {
	auths       map[string]string // host -> base64(user:password)
	credsStore  string
	credHelpers map[string]string // host -> helper name
	run         Runner

	mu     sync.Mutex
	helped map[string]login // the helpers' answers, per host
}

type login struct {
	user, password string
	err            error
}

// hubKey is the server address Docker files Docker Hub's login under, in
// auths and in credential helpers alike.
const hubKey = "https://index.docker.io/v1/"

// helperTimeout bounds one run of a credential helper: one that waits for a
// locked keychain's prompt must not hang a pull.
const helperTimeout = 30 * time.Second

// Runner runs a command: how DockerCredentials runs credential helpers.
// pkg/host's Runner is one (host.Exec runs them on this machine).
type Runner interface {
	// Run runs name with args fed stdin and returns its standard output,
	// which it returns too when the command fails.
	Run(ctx context.Context, stdin io.Reader, name string, args ...string) ([]byte, error)
}

// LoadDockerCredentials reads Docker's client config; run runs the
// credential helpers it names. A missing file means no credentials, as it
// does for docker itself.
func LoadDockerCredentials(run Runner) (*DockerCredentials, error) {
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".docker")
	}
	c := &DockerCredentials{auths: map[string]string{}, credHelpers: map[string]string{}, helped: map[string]login{}, run: run}
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("reading Docker's logins: %w", err)
	}
	var cfg struct {
		Auths map[string]struct {
			Auth string `json:"auth"`
		} `json:"auths"`
		CredsStore  string            `json:"credsStore"`
		CredHelpers map[string]string `json:"credHelpers"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return c, fmt.Errorf("reading Docker's logins in %s: %w (fix or move the file; docker itself cannot read it either)", path, err)
	}
	for host, a := range cfg.Auths {
		c.auths[hostKey(host)] = a.Auth
	}
	for host, helper := range cfg.CredHelpers {
		c.credHelpers[hostKey(host)] = helper
	}
	c.credsStore = cfg.CredsStore
	return c, nil
}

// hostKey is the host a config entry is for: entries may be URLs
// (https://index.docker.io/v1/) or bare hosts.
func hostKey(entry string) string {
	h := strings.TrimPrefix(strings.TrimPrefix(entry, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	return canonicalHost(h)
}

// canonicalHost names Docker Hub by the host Docker files its login under,
// whichever of its names the pull used.
func canonicalHost(host string) string {
	switch host {
	case DockerHub, dockerHubAPI, "index.docker.io":
		return "index.docker.io"
	}
	return host
}

// Lookup returns the user and password for host, empty for an anonymous
// pull. It fails only when a credential helper is configured for host and
// cannot answer: a login that was meant to be used and cannot be is never
// silently replaced by an anonymous pull.
func (c *DockerCredentials) Lookup(host string) (user, password string, err error) {
	host = canonicalHost(host)
	helper := c.credHelpers[host]
	if helper == "" {
		helper = c.credsStore
	}
	if helper == "" {
		raw, err := base64.StdEncoding.DecodeString(c.auths[host])
		if err != nil {
			return "", "", nil
		}
		user, password, _ = strings.Cut(string(raw), ":")
		return user, password, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.helped[host]
	if !ok {
		l.user, l.password, l.err = c.runHelper(helper, host)
		c.helped[host] = l
	}
	return l.user, l.password, l.err
}

// ErrCredentialHelper marks a login a credential helper could not give:
// no retry mends that.
var ErrCredentialHelper = errors.New("credential helper failed")

// runHelper asks docker-credential-NAME for host's login, as docker does:
// the server address on stdin, {"Username", "Secret"} on stdout, and
// "credentials not found" for a host it holds nothing for.
func (c *DockerCredentials) runHelper(name, host string) (user, secret string, err error) {
	prog := "docker-credential-" + name
	server := host
	if host == "index.docker.io" {
		server = hubKey
	}
	if c.run == nil {
		return "", "", fmt.Errorf("%w: Docker's config names the credential helper %q for %s, and nothing was given to run it", ErrCredentialHelper, name, host)
	}
	ctx, cancel := context.WithTimeout(context.Background(), helperTimeout)
	defer cancel()
	out, err := c.run.Run(ctx, strings.NewReader(server), prog, "get")
	switch {
	case err != nil && strings.Contains(string(out), "credentials not found"):
		return "", "", nil
	case err != nil && strings.Contains(err.Error(), "executable file not found"):
		return "", "", fmt.Errorf("%w: Docker's config names the credential helper %q for %s, but %s is not on the PATH: install it, or remove it from config.json (credsStore, credHelpers) and 'docker login %s' again", ErrCredentialHelper, name, host, prog, host)
	case err != nil:
		return "", "", fmt.Errorf("%w: %s could not give the login for %s: %v %.300s (check it with: echo %s | %s get)", ErrCredentialHelper, prog, host, err, strings.TrimSpace(string(out)), server, prog)
	}
	var creds struct {
		Username, Secret string
	}
	if err := json.Unmarshal(out, &creds); err != nil {
		return "", "", fmt.Errorf("%w: %s answered for %s with something other than its JSON: %v", ErrCredentialHelper, prog, host, err)
	}
	return creds.Username, creds.Secret, nil
}

// EngineAuth returns the X-Registry-Auth value the Engine API takes for a
// pull from host, or "" for an anonymous one.
func (c *DockerCredentials) EngineAuth(host string) (string, error) {
	user, password, err := c.Lookup(host)
	if err != nil || user == "" {
		return "", err
	}
	a := map[string]string{"username": user, "password": password, "serveraddress": host}
	if user == "<token>" {
		// A helper's identity token (a registry's OAuth refresh token), which
		// docker hands the engine as such rather than as a password.
		a = map[string]string{"identitytoken": password, "serveraddress": host}
	}
	b, _ := json.Marshal(a)
	return base64.URLEncoding.EncodeToString(b), nil
}
