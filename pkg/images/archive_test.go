package images

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/containers"
)

// LoadImages loads a `docker save` archive as Docker's classic store does:
// each manifest.json entry becomes the image its config file names (its ID
// the config's digest), under every name in its RepoTags.
func (f *fakeStore) LoadImages(_ context.Context, r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("loading images: %w", err)
		}
		if path.Clean("/"+hdr.Name) != "/manifest.json" {
			continue
		}
		var entries []struct {
			Config   string
			RepoTags []string
		}
		if err := json.NewDecoder(tr).Decode(&entries); err != nil {
			return err
		}
		for _, e := range entries {
			for _, tag := range e.RepoTags {
				f.loadedTags = append(f.loadedTags, tag)
				f.names[tag] = containers.Image{ID: "sha256:" + strings.TrimSuffix(e.Config, ".json")}
			}
		}
	}
}

// archiveEntry is one image of a test archive: the digest of its config
// and the names the archive's manifest.json gives it.
type archiveEntry struct {
	config string
	tags   []string
}

// makeArchive writes an archive as 'dk8s save' does: the carried lock, then
// what `docker save` writes (config files, manifest.json).
func makeArchive(t *testing.T, carried *Lock, images ...archiveEntry) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	lock, err := carried.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	add(archiveLockName, lock)
	var manifest []map[string]any
	for _, img := range images {
		cfg := strings.TrimPrefix(img.config, "sha256:") + ".json"
		add(cfg, []byte("{}"))
		manifest = append(manifest, map[string]any{"Config": cfg, "RepoTags": img.tags, "Layers": []string{}})
	}
	data, _ := json.Marshal(manifest)
	add("manifest.json", data)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

const (
	apiserver = "registry.k8s.io/kube-apiserver:v1.37.2"
	pause     = "registry.k8s.io/pause:3.10.2"
)

// trustedLock is the lock dk8s trusts: kube-apiserver's content is 'a',
// pause's 'c'.
func trustedLock() *Lock {
	return &Lock{APIVersion: lockAPIVersion, Kind: lockKind, Default: "v1.37.2", Releases: []Release{{
		Kubernetes: "v1.37.2",
		Images: []Image{
			{Component: "kube-apiserver", Name: apiserver, Aliases: []string{"k8s.gcr.io/kube-apiserver:v1.37.2"},
				Platforms: map[string]PlatformDigests{"linux/amd64": {Config: digest('a')}}},
			{Component: "pause", Name: pause, Aliases: []string{"k8s.gcr.io/pause:3.10.2"},
				Platforms: map[string]PlatformDigests{"linux/amd64": {Config: digest('c')}}},
		},
	}}}
}

// An archive whose carried lock was rewritten to vouch for other content
// under kube-apiserver's name is refused, and the good image the machine
// had keeps its name.
func TestLoadRefusesTamperedArchive(t *testing.T) {
	tampered := trustedLock()
	tampered.Releases[0].Images[0].Platforms = map[string]PlatformDigests{"linux/amd64": {Config: digest('c')}}
	ar := makeArchive(t, tampered, archiveEntry{digest('c'), []string{pause, apiserver}})
	f := &fakeStore{names: map[string]containers.Image{apiserver: {ID: digest('a')}}}

	loaded, err := Load(context.Background(), f, trustedLock(), ar, LoadOptions{})
	results := loaded.Results
	if err == nil || !strings.Contains(err.Error(), apiserver) || !strings.Contains(err.Error(), "does not match images.lock") {
		t.Fatalf("want kube-apiserver refused as not matching, got %v", err)
	}
	if got := f.names[apiserver]; got.ID != digest('a') {
		t.Errorf("%s should keep its good content, got %s", apiserver, got.ID)
	}
	if _, ok := f.names["k8s.gcr.io/kube-apiserver:v1.37.2"]; ok {
		t.Errorf("the alias should not name the refused content")
	}
	for _, tag := range f.loadedTags {
		if !strings.HasPrefix(tag, quarantineHost+"/") {
			t.Errorf("the daemon loaded %s: every name it loads should be a quarantine name", tag)
		}
	}
	for name := range f.names {
		if strings.HasPrefix(name, quarantineHost+"/") {
			t.Errorf("quarantine name %s is left", name)
		}
	}
	if len(results) != 2 || results[0].Verdict != Mismatch || results[1].Verdict != Verified || f.names[pause].ID != digest('c') {
		t.Errorf("want kube-apiserver refused and pause loaded, got %+v", results)
	}
}

// noQuarantineLeft fails the test for any quarantine name left in f.
func noQuarantineLeft(t *testing.T, f *fakeStore) {
	t.Helper()
	for name := range f.names {
		if strings.HasPrefix(name, quarantineHost+"/") {
			t.Errorf("quarantine name %s is left", name)
		}
	}
}

func TestLoadNeedsTheClaimedReleaseInTheTrustedLock(t *testing.T) {
	claim := trustedLock()
	claim.Default, claim.Releases[0].Kubernetes = "v1.99.0", "v1.99.0"
	f := &fakeStore{names: map[string]containers.Image{}}
	_, err := Load(context.Background(), f, trustedLock(), makeArchive(t, claim, archiveEntry{digest('a'), []string{apiserver}}), LoadOptions{})
	for _, want := range []string{"the archive says it holds Kubernetes v1.99.0", "it has v1.37.2", "--lock"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v should say %q", err, want)
		}
	}
	if len(f.names) != 0 || len(f.loadedTags) != 0 {
		t.Errorf("nothing should be loaded, got %v", f.names)
	}
}

// An image the trusted lock knows only by registry digests cannot be
// checked from an archive: it loads as pull treats unverified images, and
// RequireVerified refuses it before it gets any name.
func TestLoadUnverified(t *testing.T) {
	trusted := trustedLock()
	trusted.Releases[0].Images[0].Platforms = nil
	trusted.Releases[0].Images[0].Digest = digest('1')
	archive := func() *bytes.Buffer {
		return makeArchive(t, trustedLock(), archiveEntry{digest('a'), []string{apiserver}}, archiveEntry{digest('c'), []string{pause}})
	}

	f := &fakeStore{names: map[string]containers.Image{}}
	loaded, err := Load(context.Background(), f, trusted, archive(), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	api := loaded.Results[0]
	if api.Verdict != Unverified || !strings.Contains(api.Detail, "dk8s images lock --from") {
		t.Errorf("want unverified, saying how to record config digests: %s (%s)", api.Verdict, api.Detail)
	}
	if f.names[apiserver].ID != digest('a') || f.names["k8s.gcr.io/kube-apiserver:v1.37.2"].ID != digest('a') {
		t.Errorf("an unverified image gets its names, as pull gives them: %v", f.names)
	}
	noQuarantineLeft(t, f)

	f = &fakeStore{names: map[string]containers.Image{}}
	loaded, err = Load(context.Background(), f, trusted, archive(), LoadOptions{RequireVerified: true})
	if err == nil || !strings.Contains(err.Error(), "unverified, so --require-verified refused it") {
		t.Fatalf("want kube-apiserver refused, got %v", err)
	}
	if api := loaded.Results[0]; api.Verdict != Unverified || !errors.Is(api.Err, ErrUnverified) {
		t.Errorf("want unverified and refused, got %s, %v", api.Verdict, api.Err)
	}
	for _, ref := range []string{apiserver, "k8s.gcr.io/kube-apiserver:v1.37.2"} {
		if _, ok := f.names[ref]; ok {
			t.Errorf("%s should not be named after the refusal", ref)
		}
	}
	if f.names[pause].ID != digest('c') {
		t.Errorf("pause, verified, should be loaded")
	}
	noQuarantineLeft(t, f)
}

// Docker's classic store writes a docker.io image into an archive under its
// short name (flannel/flannel:TAG): Load takes it for the lock's full name,
// not for a name outside the set.
func TestLoadTakesDockerHubShortNames(t *testing.T) {
	const flannel = "docker.io/flannel/flannel:v0.28.10"
	trusted := trustedLock()
	trusted.Releases[0].Images = append(trusted.Releases[0].Images, Image{Component: "flannel", Name: flannel,
		Platforms: map[string]PlatformDigests{"linux/amd64": {Config: digest('f')}}})
	ar := makeArchive(t, trusted, archiveEntry{digest('a'), []string{apiserver}}, archiveEntry{digest('c'), []string{pause}},
		archiveEntry{digest('f'), []string{"flannel/flannel:v0.28.10"}})
	f := &fakeStore{names: map[string]containers.Image{}}

	loaded, err := Load(context.Background(), f, trusted, ar, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res := loaded.Results[2]; res.Verdict != Verified || f.names[flannel].ID != digest('f') {
		t.Errorf("flannel: %s, %v; named %v", res.Verdict, res.Err, f.names)
	}
	if len(loaded.Ignored) != 0 {
		t.Errorf("ignored %v: the short name is flannel's", loaded.Ignored)
	}
	noQuarantineLeft(t, f)
}
