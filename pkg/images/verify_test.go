package images

import (
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/containers"
)

func digest(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

func TestVerify(t *testing.T) {
	locked := Image{
		Name:   "registry.k8s.io/pause:3.10.2",
		Digest: digest('a'),
		Platforms: map[string]PlatformDigests{
			"linux/amd64": {Manifest: digest('b'), Config: digest('c')},
			"linux/arm64": {Manifest: digest('d'), Config: digest('e')},
		},
	}
	indexOnly := Image{Name: locked.Name, Digest: digest('a')}
	cases := []struct {
		name string
		want Image
		got  containers.Image
		plat string
		v    Verdict
	}{
		{"classic store: ID is the config digest", locked, containers.Image{ID: digest('c')}, "linux/amd64", Verified},
		{"containerd store: ID is the index digest", locked, containers.Image{ID: digest('a')}, "linux/amd64", Verified},
		{"containerd store: ID is the platform manifest", locked, containers.Image{ID: digest('b')}, "linux/amd64", Verified},
		{"faithful mirror: registry digest is upstream's index", indexOnly, containers.Image{ID: digest('9'), RepoDigests: []string{"k8s.m.daocloud.io/pause@" + digest('a')}}, "linux/amd64", Verified},
		{"re-serializing mirror, config digest known", locked, containers.Image{ID: digest('c'), RepoDigests: []string{"registry.aliyuncs.com/google_containers/pause@" + digest('7')}}, "linux/amd64", Verified},
		{"re-serializing mirror, index digest only", indexOnly, containers.Image{ID: digest('c'), RepoDigests: []string{"registry.aliyuncs.com/google_containers/pause@" + digest('7')}}, "linux/amd64", Mismatch},
		{"other platform's config", locked, containers.Image{ID: digest('e')}, "linux/amd64", Mismatch},
		{"other content", locked, containers.Image{ID: digest('f'), RepoDigests: []string{"x/pause@" + digest('f')}}, "linux/amd64", Mismatch},
		{"no digest in the lock", Image{Name: locked.Name}, containers.Image{ID: digest('f')}, "linux/amd64", Unverified},
		{"empty ID never matches an empty digest", Image{Name: locked.Name, Digest: digest('a')}, containers.Image{}, "linux/amd64", Mismatch},
	}
	for _, c := range cases {
		if got := Verify(c.want, c.got, c.plat); got.Verdict != c.v {
			t.Errorf("%s: got %s (%s), want %s", c.name, got.Verdict, got.Detail, c.v)
		}
	}
}

func TestMismatchDetailNamesBothSides(t *testing.T) {
	locked := Image{Name: "registry.k8s.io/pause:3.10.2", Platforms: map[string]PlatformDigests{"linux/amd64": {Config: digest('c')}}}
	v := Verify(locked, containers.Image{ID: digest('f')}, "linux/amd64")
	for _, want := range []string{"got image sha256:ffffffffffff", "linux/amd64 config sha256:cccccccccccc"} {
		if !strings.Contains(v.Detail, want) {
			t.Errorf("detail %q should contain %q", v.Detail, want)
		}
	}
}

// With only the index digest to go by, a copy whose registry digest differs
// may be a re-serialized manifest list, not other content: the refusal says
// how to get past it without giving up the check.
func TestMismatchByRegistryDigestSaysWhatToDo(t *testing.T) {
	indexOnly := Image{Name: "registry.k8s.io/pause:3.10.2", Digest: digest('a')}
	v := Verify(indexOnly, containers.Image{ID: digest('c'), RepoDigests: []string{"registry.aliyuncs.com/google_containers/pause@" + digest('7')}}, "linux/amd64")
	if v.Verdict != Mismatch || !strings.Contains(v.Detail, "re-serializes manifests") || !strings.Contains(v.Detail, "daocloud") {
		t.Errorf("got %s: %s", v.Verdict, v.Detail)
	}
	withConfig := Image{Name: indexOnly.Name, Digest: digest('a'), Platforms: map[string]PlatformDigests{"linux/amd64": {Config: digest('b')}}}
	if v := Verify(withConfig, containers.Image{ID: digest('c'), RepoDigests: []string{"x/pause@" + digest('7')}}, "linux/amd64"); strings.Contains(v.Detail, "re-serializes") {
		t.Errorf("with a config digest the content itself was compared; no hint expected: %s", v.Detail)
	}
}
