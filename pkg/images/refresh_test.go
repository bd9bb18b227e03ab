package images

import (
	"context"
	"crypto/sha256"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/dk8s/dk8s"
	"github.com/dk8s/dk8s/pkg/mirror"
)

// fakeResolver serves a digest made of each reference, for the platforms
// asked, and records the references.
type fakeResolver struct {
	asked []string
	fail  string // a reference that is not found
}

func digestOf(s string) string { return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(s))) }

func (f *fakeResolver) Resolve(_ context.Context, ref string, platforms []string) (mirror.Resolved, error) {
	f.asked = append(f.asked, ref)
	if ref == f.fail {
		return mirror.Resolved{}, fmt.Errorf("%s: not found", ref)
	}
	res := mirror.Resolved{Digest: digestOf(ref), Platforms: map[string]mirror.PlatformDigests{}}
	for _, p := range platforms {
		res.Platforms[p] = mirror.PlatformDigests{Manifest: digestOf(ref + p + "m"), Config: digestOf(ref + p + "c")}
	}
	return res, nil
}

func TestRefreshLock(t *testing.T) {
	lock, err := ParseLock(dk8s.DefaultLock)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := lock.Release(lock.Default)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := mirror.Parse("registry.local/google_containers")
	r := &fakeResolver{}
	data, err := RefreshLock(context.Background(), r, m, lock, *rel, []string{"linux/amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.asked) != len(rel.Images) || !strings.HasPrefix(r.asked[0], m.Prefix+"/") {
		t.Errorf("resolved %v: want each of the %d images on %s", r.asked, len(rel.Images), m.Prefix)
	}
	if !strings.HasPrefix(string(data), "# images.lock:") {
		t.Errorf("the lock file lost its header:\n%.200s", data)
	}
	got, err := ParseLock(data)
	if err != nil {
		t.Fatalf("the refreshed lock does not parse: %v", err)
	}
	if got.Default != lock.Default || len(got.Releases) != len(lock.Releases) {
		t.Errorf("the refreshed lock has default %s and %d releases, want %s and %d", got.Default, len(got.Releases), lock.Default, len(lock.Releases))
	}
	for i, gr := range got.Releases {
		if gr.Kubernetes != rel.Kubernetes {
			if !reflect.DeepEqual(gr, lock.Releases[i]) {
				t.Errorf("release %s changed: only %s was refreshed", gr.Kubernetes, rel.Kubernetes)
			}
			continue
		}
		for j, img := range gr.Images {
			ref := mustRef(t, m, rel.Images[j].Name)
			want := PlatformDigests{Manifest: digestOf(ref + "linux/amd64m"), Config: digestOf(ref + "linux/amd64c")}
			if img.Name != rel.Images[j].Name || img.Digest != digestOf(ref) || len(img.Platforms) != 1 || img.Platforms["linux/amd64"] != want {
				t.Errorf("%s: digest %s, platforms %v; want what %s resolved to", img.Name, img.Digest, img.Platforms, ref)
			}
		}
	}

	// A release that cannot be resolved whole writes nothing.
	r = &fakeResolver{fail: mustRef(t, m, rel.Images[1].Name)}
	if data, err := RefreshLock(context.Background(), r, m, lock, *rel, []string{"linux/amd64"}); err == nil || data != nil ||
		!strings.HasPrefix(err.Error(), rel.Images[1].Component+": ") {
		t.Errorf("an image not found: %v, %d bytes; want an error naming %s and no lock", err, len(data), rel.Images[1].Component)
	}
}

// A catalogue mirror not known to serve docker.io cannot record flannel's
// digests: the lock is not written, and the error says where to resolve.
func TestRefreshLockOnAMirrorWithoutDockerHub(t *testing.T) {
	lock, err := ParseLock(dk8s.DefaultLock)
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := lock.Release("")
	aliyun, _ := mirror.Parse("aliyun")
	r := &fakeResolver{}
	data, err := RefreshLock(context.Background(), r, aliyun, lock, *rel, []string{"linux/amd64"})
	if data != nil || err == nil || !strings.Contains(err.Error(), "flannel: aliyun is not known to serve docker.io images (daocloud, upstream") {
		t.Errorf("got %v, %d bytes; want flannel refused with the mirrors that serve it", err, len(data))
	}
	for _, ref := range r.asked {
		if strings.Contains(ref, "flannel") {
			t.Errorf("asked %s of a mirror that does not serve it", ref)
		}
	}
}

func mustRef(t *testing.T, m mirror.Mirror, canonical string) string {
	t.Helper()
	ref, err := m.Ref(canonical)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}
