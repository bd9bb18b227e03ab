package mirror

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
)

// 'docker login' files Docker Hub's login under its index; a pull of
// docker.io/flannel/flannel from the upstream mirror uses it.
func TestDockerCredentialsLookup(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	auth := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cfg := `{"auths": {"https://index.docker.io/v1/": {"auth": "` + auth("hub:pw") + `"},
		"harbor.local:8443": {"auth": "` + auth("me:secret") + `"}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c := LoadDockerCredentials()
	for host, want := range map[string]string{"docker.io": "hub:pw", "harbor.local:8443": "me:secret", "registry.k8s.io": ":"} {
		if u, p := c.Lookup(host); u+":"+p != want {
			t.Errorf("Lookup(%s) = %s:%s, want %s", host, u, p, want)
		}
	}
}
