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
	if _, err := l.Release("v1.20.0"); err == nil || !strings.Contains(err.Error(), "v1.37.2, v1.36.3, v1.36.2, v1.35.4, v1.35.3") {
		t.Errorf("an unknown version should list the known ones, newest first: %v", err)
	}
}

// The shipped default must be a release dk8s can check end to end on
// either platform it is built for: every image of Kubernetes's set pinned
// by its index digest, and kubelet and kubectl by their sha256. And it must
// be the newest such release: a newer verified one would be held back.
func TestShippedDefaultIsFullyPinned(t *testing.T) {
	l, err := ParseLock(dk8s.DefaultLock)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := l.Release("")
	if err != nil {
		t.Fatal(err)
	}
	if un := rel.Unpinned(); len(un) > 0 {
		t.Errorf("default %s leaves unpinned: %s", rel.Kubernetes, strings.Join(un, ", "))
	}
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "etcd", "pause", "coredns"} {
		if img, ok := rel.Image(c); !ok || !digestRE.MatchString(img.Digest) {
			t.Errorf("default %s: %s has no index digest", rel.Kubernetes, c)
		}
	}
	for _, name := range []string{"kubelet", "kubectl"} {
		var bin *Binary
		for i := range rel.Binaries {
			if rel.Binaries[i].Name == name {
				bin = &rel.Binaries[i]
			}
		}
		if bin == nil {
			t.Errorf("default %s has no %s", rel.Kubernetes, name)
			continue
		}
		for _, p := range []string{"linux/amd64", "linux/arm64"} {
			if !sha256RE.MatchString(bin.SHA256[p]) {
				t.Errorf("default %s: %s for %s has no sha256", rel.Kubernetes, name, p)
			}
		}
		if !strings.HasPrefix(bin.URL, "https://dl.k8s.io/release/"+rel.Kubernetes+"/bin/{os}/{arch}/") {
			t.Errorf("default %s: %s comes from %s, not dl.k8s.io's path that binary mirrors keep", rel.Kubernetes, name, bin.URL)
		}
	}
	if newest := l.NewestVerified(); newest != l.Default {
		t.Errorf("default is %s, but the newest fully pinned release is %s", l.Default, newest)
	}
}

func TestUnpinned(t *testing.T) {
	rel := Release{Kubernetes: "v1.36.2",
		Images: []Image{
			{Component: "pause", Digest: "sha256:" + strings.Repeat("a", 64)},
			{Component: "etcd"},
			{Component: "flannel"},
		},
		Binaries: []Binary{{Name: "kubelet", SHA256: map[string]string{"linux/amd64": strings.Repeat("b", 64)}}},
	}
	if got, want := strings.Join(rel.Unpinned(), ","), "etcd,kubelet linux/arm64"; got != want {
		t.Errorf("Unpinned = %q, want %q (flannel is an add-on, reported apart)", got, want)
	}
	if got := rel.UnpinnedAddOns(); len(got) != 1 || got[0] != "flannel" {
		t.Errorf("UnpinnedAddOns = %v", got)
	}
	if rel.Verified() || !strings.HasPrefix(rel.Pinning(), "unverified: etcd, kubelet linux/arm64") {
		t.Errorf("Verified %v, Pinning %q", rel.Verified(), rel.Pinning())
	}
	rel.Images[1].Digest = rel.Images[0].Digest
	rel.Binaries[0].SHA256["linux/arm64"] = strings.Repeat("c", 64)
	if !rel.Verified() || rel.Pinning() != "verified" {
		t.Errorf("fully pinned: Verified %v, Pinning %q", rel.Verified(), rel.Pinning())
	}
	if (&Release{Images: rel.Images}).Verified() {
		t.Error("a release with no host binary to pin counted as verified")
	}
}
