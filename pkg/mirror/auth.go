package mirror

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
)

// DockerCredentials are the logins `docker login` stored in Docker's client
// config ($DOCKER_CONFIG/config.json, else ~/.docker/config.json), so that
// a private mirror needs no other setup. Credential helpers are not
// consulted: only logins stored in the file itself.
type DockerCredentials struct {
	auths map[string]string // host -> base64(user:password)
}

// LoadDockerCredentials reads Docker's client config. A missing or
// unreadable file means no credentials, as it does for docker itself.
func LoadDockerCredentials() *DockerCredentials {
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".docker")
	}
	c := &DockerCredentials{auths: map[string]string{}}
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return c
	}
	var cfg struct {
		Auths map[string]struct {
			Auth string `json:"auth"`
		} `json:"auths"`
	}
	if json.Unmarshal(data, &cfg) != nil {
		return c
	}
	for host, a := range cfg.Auths {
		host = strings.TrimPrefix(strings.TrimPrefix(host, "https://"), "http://")
		host, _, _ = strings.Cut(host, "/")
		c.auths[host] = a.Auth
	}
	return c
}

// Lookup returns the user and password stored for host.
func (c *DockerCredentials) Lookup(host string) (user, password string) {
	if host == DockerHub {
		host = "index.docker.io" // where 'docker login' files Docker Hub's login
	}
	raw, err := base64.StdEncoding.DecodeString(c.auths[host])
	if err != nil {
		return "", ""
	}
	user, password, _ = strings.Cut(string(raw), ":")
	return user, password
}

// EngineAuth returns the X-Registry-Auth value the Engine API takes for a
// pull from host, or "" for an anonymous one.
func (c *DockerCredentials) EngineAuth(host string) string {
	user, password := c.Lookup(host)
	if user == "" {
		return ""
	}
	b, _ := json.Marshal(map[string]string{"username": user, "password": password, "serveraddress": host})
	return base64.URLEncoding.EncodeToString(b)
}
