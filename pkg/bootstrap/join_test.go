package bootstrap

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dk8s/dk8s"
	"github.com/dk8s/dk8s/pkg/containers/containerstest"
	"github.com/dk8s/dk8s/pkg/images"
)

func TestParseServer(t *testing.T) {
	for in, want := range map[string]string{
		"https://192.0.2.10:6443": "https://192.0.2.10:6443",
		"192.0.2.10":              "https://192.0.2.10:6443",
		"https://cp.example/":     "https://cp.example:6443",
	} {
		if got, err := parseServer(in); err != nil || got != want {
			t.Errorf("%s: %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"http://192.0.2.10:6443", "https://192.0.2.10:6443/api", "https://"} {
		if _, err := parseServer(bad); err == nil || !strings.Contains(err.Error(), "https://HOST:6443") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// What a join refuses before it asks anything of the network or changes
// anything: a host that already is a node, of this cluster as a control
// plane or of another as a worker, a directory of other files, and a join
// without a pin.
func TestJoinRefusesBeforeChangingAnything(t *testing.T) {
	lock, err := images.ParseLock(dk8s.DefaultLock)
	if err != nil {
		t.Fatal(err)
	}
	join := func(dir string, mutate func(*JoinConfig)) error {
		jc := JoinConfig{Config: Config{Dir: dir, NodeName: "w1"}, Server: "https://192.0.2.10:6443", Token: "abcdef.0123456789abcdef"}
		if mutate != nil {
			mutate(&jc)
		}
		return Join(context.Background(), &containerstest.Engine{}, jc, lock, JoinOptions{})
	}
	cp := t.TempDir()
	writeSettings(cp, Settings{Name: "dk8s", NodeName: "cp", Role: RoleControlPlane})
	if err := join(cp, nil); err == nil || !strings.Contains(err.Error(), "is a control plane") {
		t.Errorf("a control plane: %v", err)
	}
	other := t.TempDir()
	writeSettings(other, Settings{Name: "dk8s", NodeName: "w1", Role: RoleWorker, Server: "https://192.0.2.99:6443"})
	if err := join(other, nil); err == nil || !strings.Contains(err.Error(), "already a worker of https://192.0.2.99:6443") {
		t.Errorf("a worker of another cluster: %v", err)
	}
	etc := t.TempDir()
	os.WriteFile(filepath.Join(etc, "passwd"), []byte("root:x:0:0"), 0o644)
	if err := join(etc, nil); err == nil || !strings.Contains(err.Error(), "not made by dk8s") {
		t.Errorf("a directory of other files: %v", err)
	}
	fresh := filepath.Join(t.TempDir(), "dk8s")
	if err := join(fresh, nil); err == nil || !strings.Contains(err.Error(), "--ca-cert-hash is required") {
		t.Errorf("no pin: %v", err)
	}
	if err := join(fresh, func(jc *JoinConfig) { jc.Token = "nope" }); err == nil || !strings.Contains(err.Error(), "dk8s token create") {
		t.Errorf("a malformed token: %v", err)
	}
	if err := join(fresh, func(jc *JoinConfig) { jc.CACertHashes = []string{"md5:abc"} }); err == nil {
		t.Error("a malformed pin should be refused")
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("a refused join made %s", fresh)
	}
	for _, d := range []string{cp, other, etc} {
		if _, err := os.Stat(filepath.Join(d, "pki")); !os.IsNotExist(err) {
			t.Errorf("a refused join wrote in %s", d)
		}
	}
}
