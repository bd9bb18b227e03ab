package images

import (
	"archive/tar"
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/containers"
)

// Archives Load must refuse or read with care.

// rawArchive is an archive with the carried lock and the entries given.
func rawArchive(t *testing.T, entries ...*tar.Header) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	lock, _ := trustedLock().Marshal()
	tw.WriteHeader(&tar.Header{Name: archiveLockName, Mode: 0o644, Size: int64(len(lock)), Typeflag: tar.TypeReg})
	tw.Write(lock)
	for _, hdr := range entries {
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(bytes.Repeat([]byte(" "), int(hdr.Size)))
	}
	tw.Close()
	return &buf
}

func TestLoadRefusesMalformedArchives(t *testing.T) {
	cases := map[string]struct {
		archive *bytes.Buffer
		want    string
	}{
		"huge lock": {func() *bytes.Buffer {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			tw.WriteHeader(&tar.Header{Name: archiveLockName, Mode: 0o644, Size: maxLockSize + 1, Typeflag: tar.TypeReg})
			tw.Write(make([]byte, maxLockSize+1))
			tw.Close()
			return &buf
		}(), "dk8s-images.lock is 1048577 bytes, more than the 1048576 dk8s reads"},
		"huge manifest.json": {rawArchive(t, &tar.Header{Name: "manifest.json", Mode: 0o644, Size: maxIndexSize + 1, Typeflag: tar.TypeReg}), "manifest.json is 4194305 bytes"},
		"no manifest.json":   {rawArchive(t, &tar.Header{Name: "repositories", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg}), "has no manifest.json"},
		"manifest.json a link": {rawArchive(t, &tar.Header{Name: "manifest.json", Linkname: "evil.json", Typeflag: tar.TypeSymlink}),
			"manifest.json is not a plain file"},
		"manifest.json under a link": {rawArchive(t,
			&tar.Header{Name: "x", Linkname: ".", Typeflag: tar.TypeSymlink},
			&tar.Header{Name: "x/manifest.json", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg}),
			"x/manifest.json lies under a link"},
	}
	for name, c := range cases {
		f := &fakeStore{names: map[string]containers.Image{}}
		_, err := Load(context.Background(), f, trustedLock(), c.archive, LoadOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, c.want)
		}
		if len(f.names) != 0 {
			t.Errorf("%s: nothing should be named, got %v", name, f.names)
		}
	}
}

// An image that could not be checked never displaces a verified one.
func TestLoadKeepsVerifiedOverUnverified(t *testing.T) {
	trusted := trustedLock()
	trusted.Releases[0].Images[0].Platforms = nil
	trusted.Releases[0].Images[0].Digest = digest('1')
	pulled := containers.Image{ID: digest('a'), RepoDigests: []string{"mirror.local/kube-apiserver@" + digest('1')}}
	f := &fakeStore{names: map[string]containers.Image{apiserver: pulled}}
	ar := makeArchive(t, trustedLock(), archiveEntry{digest('b'), []string{apiserver}}, archiveEntry{digest('c'), []string{pause}})
	loaded, err := Load(context.Background(), f, trusted, ar, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if f.names[apiserver].ID != digest('a') || f.names["k8s.gcr.io/kube-apiserver:v1.37.2"].ID != digest('a') {
		t.Errorf("the verified image should keep its names: %v", f.names)
	}
	if r := loaded.Results[0]; !r.Skipped || r.Verdict != Verified {
		t.Errorf("want the present image reported, verified: %+v", r)
	}
}

// Docker's classic store saves a layer two images share once, and links the
// second image's copy to the first: such an archive loads.
func TestLoadTakesDockerSaveLayerLinks(t *testing.T) {
	manifest := `[{"Config":"` + strings.Repeat("a", 64) + `.json","RepoTags":["` + apiserver + `"],"Layers":["l1/layer.tar"]},
		{"Config":"` + strings.Repeat("c", 64) + `.json","RepoTags":["` + pause + `"],"Layers":["l2/layer.tar"]}]`
	ar := rawArchive(t,
		&tar.Header{Name: "l1/", Mode: 0o755, Typeflag: tar.TypeDir},
		&tar.Header{Name: "l1/layer.tar", Mode: 0o644, Size: 1024, Typeflag: tar.TypeReg},
		&tar.Header{Name: "l2/", Mode: 0o755, Typeflag: tar.TypeDir},
		&tar.Header{Name: "l2/layer.tar", Linkname: "../l1/layer.tar", Typeflag: tar.TypeSymlink},
	)
	// rawArchive ends the tar; put manifest.json before its end.
	var buf bytes.Buffer
	tr, tw := tar.NewReader(ar), tar.NewWriter(&buf)
	if err := copyTar(tr, tw); err != nil {
		t.Fatal(err)
	}
	tw.WriteHeader(&tar.Header{Name: "manifest.json", Mode: 0o644, Size: int64(len(manifest)), Typeflag: tar.TypeReg})
	tw.Write([]byte(manifest))
	tw.Close()

	f := &fakeStore{names: map[string]containers.Image{}}
	if _, err := Load(context.Background(), f, trustedLock(), &buf, LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	if f.names[apiserver].ID != digest('a') || f.names[pause].ID != digest('c') {
		t.Errorf("both images should load: %v", f.names)
	}
}

// Names the archive gives outside the trusted set name nothing, however
// the archive spells the key that carries them.
func TestLoadIgnoresNamesOutsideTheSet(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	lock, _ := trustedLock().Marshal()
	manifest := `[{"Config":"` + strings.Repeat("a", 64) + `.json","RepoTags":["` + apiserver + `"],"repotags":["evil.example/kube-apiserver:v1.37.2"]},
		{"Config":"` + strings.Repeat("c", 64) + `.json","RepoTags":["` + pause + `"]}]`
	for _, e := range []struct{ name, data string }{
		{archiveLockName, string(lock)},
		{"repositories", `{"registry.k8s.io/kube-scheduler":{"v1.37.2":"` + strings.Repeat("f", 64) + `"}}`},
		{"./manifest.json", manifest},
	} {
		tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg})
		tw.Write([]byte(e.data))
	}
	tw.Close()
	f := &fakeStore{names: map[string]containers.Image{}}
	loaded, err := Load(context.Background(), f, trustedLock(), &buf, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded.Ignored) != 1 || loaded.Ignored[0] != "evil.example/kube-apiserver:v1.37.2" {
		t.Errorf("ignored %v, want the evil.example name", loaded.Ignored)
	}
	for _, tag := range f.loadedTags {
		if !strings.HasPrefix(tag, quarantineHost+"/") {
			t.Errorf("the daemon loaded %s: every name it loads should be a quarantine name", tag)
		}
	}
	if f.names[apiserver].ID != digest('a') || f.names[pause].ID != digest('c') || len(f.names) != 4 {
		t.Errorf("want the two images under their names and aliases only, got %v", f.names)
	}
}

// An image the archive gives no name would stay in the store, nameless,
// after any load: it loads under a quarantine name too, and goes with them.
func TestLoadLeavesNoNamelessImage(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	lock, _ := trustedLock().Marshal()
	manifest := `[{"Config":"` + strings.Repeat("a", 64) + `.json","RepoTags":["` + apiserver + `"]},
		{"Config":"` + strings.Repeat("d", 64) + `.json","RepoTags":[]}]`
	for _, e := range []struct{ name, data string }{{archiveLockName, string(lock)}, {"manifest.json", manifest}} {
		tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg})
		tw.Write([]byte(e.data))
	}
	tw.Close()
	f := &fakeStore{names: map[string]containers.Image{}}
	Load(context.Background(), f, trustedLock(), &buf, LoadOptions{})
	var nameless int
	for _, tag := range f.loadedTags {
		if strings.HasPrefix(tag, quarantineHost+"/") && strings.Contains(tag, ":unnamed-") {
			nameless++
		}
	}
	if nameless != 1 {
		t.Errorf("the nameless image should load under a quarantine name; loaded %v", f.loadedTags)
	}
	for name, img := range f.names {
		if strings.HasPrefix(name, quarantineHost+"/") || img.ID == digest('d') {
			t.Errorf("%s (%s) is left in the store", name, img.ID)
		}
	}
}
