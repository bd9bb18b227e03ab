package images

import (
	"strings"
	"testing"

	"github.com/dk8s/dk8s"
)

func TestShippedLock(t *testing.T) {
	l, err := ParseLock(dk8s.DefaultLock)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := l.Release("")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "etcd", "pause", "coredns"}
	for _, c := range want {
		img, ok := rel.Image(c)
		if !ok {
			t.Errorf("default release lacks %s", c)
			continue
		}
		if !strings.HasPrefix(img.Name, "registry.k8s.io/") || len(img.Aliases) == 0 || !strings.HasPrefix(img.Aliases[0], "k8s.gcr.io/") {
			t.Errorf("%s: name %s aliases %v", c, img.Name, img.Aliases)
		}
	}
	if img, _ := rel.Image("coredns"); !strings.HasPrefix(img.Name, "registry.k8s.io/coredns/coredns:") {
		t.Errorf("coredns lives at coredns/coredns upstream, got %s", img.Name)
	}
	// flannel, the pod network across machines, is in every release under
	// its full Docker Hub name; no digest is published for it, so it is
	// reported unverified rather than trusted.
	for _, r := range l.Releases {
		img, ok := r.Image("flannel")
		if !ok || !strings.HasPrefix(img.Name, "docker.io/flannel/flannel:v") || len(img.Aliases) != 0 || img.Known() {
			t.Errorf("%s: flannel %+v, want docker.io/flannel/flannel:TAG with no alias and no digest", r.Kubernetes, img)
		}
	}
	// Round trip: what Marshal writes parses to the same lock.
	data, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseLock(data)
	if err != nil {
		t.Fatalf("re-parsing a marshalled lock: %v\n%s", err, data)
	}
	if again.Default != l.Default || len(again.Releases) != len(l.Releases) || again.Releases[0].Images[5].Digest != l.Releases[0].Images[5].Digest {
		t.Errorf("round trip changed the lock")
	}
}

func TestParseLockErrors(t *testing.T) {
	head := "apiVersion: dk8s.io/v1alpha1\nkind: ImageLock\ndefault: v1.37.2\nreleases:\n  - kubernetes: v1.37.2\n    images:\n"
	img := "      - component: pause\n        name: registry.k8s.io/pause:3.10.2\n"
	cases := map[string]struct{ lock, want string }{
		"not yaml":        {"{{", "malformed image lock"},
		"unknown field":   {head + img + "        digets: sha256:00\n", "field digets not found"},
		"wrong kind":      {strings.Replace(head, "ImageLock", "Lock", 1) + img, `kind "ImageLock"`},
		"bad default":     {strings.Replace(head, "default: v1.37.2", "default: v1.38.0", 1) + img, `default "v1.38.0" is not one of the releases (v1.37.2)`},
		"short digest":    {head + img + "        digest: sha256:abc\n", `digest "sha256:abc" is not sha256:<64 hex digits>`},
		"no tag":          {head + "      - component: pause\n        name: registry.k8s.io/pause\n", "must be HOST/PATH:TAG"},
		"short name":      {head + "      - component: flannel\n        name: flannel/flannel:v0.28.10\n", `"flannel/flannel:v0.28.10" is Docker's short form: write it in full, docker.io/flannel/flannel:v0.28.10`},
		"short alias":     {head + "      - component: flannel\n        name: docker.io/flannel/flannel:v0.28.10\n        aliases: [flannel/flannel:v0.28.10]\n", "alias: image name"},
		"twice":           {head + img + img, "component pause is listed twice"},
		"bad version":     {strings.Replace(head, "kubernetes: v1.37.2", "kubernetes: 1.37", 1) + img, "must look like v1.37.2"},
		"bad platform":    {head + img + "        platforms:\n          amd64: {config: sha256:" + strings.Repeat("a", 64) + "}\n", `platform "amd64"`},
		"no images":       {head, "no images"},
		"binary checksum": {head + img + "    binaries:\n      - name: kubelet\n        url: x\n        sha256: {linux/amd64: xyz}\n", "is not 64 hex digits"},
	}
	for name, c := range cases {
		_, err := ParseLock([]byte(c.lock))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, c.want)
		}
	}
}

func TestFullName(t *testing.T) {
	for short, full := range map[string]string{
		"flannel/flannel:v0.28.10":                          "docker.io/flannel/flannel:v0.28.10",
		"busybox:1":                                         "docker.io/library/busybox:1",
		"docker.io/flannel/flannel:v0.28.10":                "docker.io/flannel/flannel:v0.28.10",
		"registry.k8s.io/pause:3.10.2":                      "registry.k8s.io/pause:3.10.2",
		"localhost/x:1":                                     "localhost/x:1",
		"127.0.0.1:5001/google_containers/flannel:v0.28.10": "127.0.0.1:5001/google_containers/flannel:v0.28.10",
		"dk8s-load.local/abc:1":                             "dk8s-load.local/abc:1",
	} {
		if got := FullName(short); got != full {
			t.Errorf("FullName(%s) = %s, want %s", short, got, full)
		}
	}
}

func TestRelease(t *testing.T) {
	l, _ := ParseLock(dk8s.DefaultLock)
	for _, v := range []string{"v1.36.2", "1.36.2"} {
		if rel, err := l.Release(v); err != nil || rel.Kubernetes != "v1.36.2" {
			t.Errorf("Release(%s) = %v, %v", v, rel, err)
		}
	}
	if _, err := l.Release("v1.20.0"); err == nil || !strings.Contains(err.Error(), "v1.37.2, v1.36.2, v1.35.3") {
		t.Errorf("an unknown version should list the known ones, newest first: %v", err)
	}
}
