package images

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/mirror"
)

// fakeStore is a Docker image store: names to images. Registries map a
// mirror name to the image it serves. It embeds the Engine interface, so
// any call it does not override fails loudly.
type fakeStore struct {
	containers.Engine
	names      map[string]containers.Image
	registries map[string]containers.Image
	untagged   []string
	loadedTags []string
}

func (f *fakeStore) Version(context.Context) (containers.Version, error) {
	return containers.Version{OS: "linux", Arch: "amd64", Store: "classic"}, nil
}

func (f *fakeStore) InspectImage(_ context.Context, ref string) (containers.Image, error) {
	img, ok := f.names[ref]
	if !ok {
		return containers.Image{}, fmt.Errorf("%s: %w", ref, containers.ErrNotFound)
	}
	return img, nil
}

func (f *fakeStore) PullImage(_ context.Context, ref string, _ containers.PullOptions) error {
	img, ok := f.registries[ref]
	if !ok {
		return fmt.Errorf("manifest for %s: %w", ref, containers.ErrNotFound)
	}
	f.names[ref] = img
	return nil
}

// TagImage takes a name or, as Docker does, an image ID as source.
func (f *fakeStore) TagImage(_ context.Context, source, target string) error {
	img, ok := f.names[source]
	for _, have := range f.names {
		if !ok && have.ID == source {
			img, ok = have, true
		}
	}
	if !ok {
		return fmt.Errorf("tagging %s: %w", source, containers.ErrNotFound)
	}
	f.names[target] = img
	return nil
}

func (f *fakeStore) UntagImage(_ context.Context, ref string) error {
	f.untagged = append(f.untagged, ref)
	delete(f.names, ref)
	return nil
}

func TestPullKeepsWhatTheUserHad(t *testing.T) {
	good := containers.Image{ID: digest('c')}
	rel := &Release{Images: []Image{{
		Component: "pause", Name: "registry.k8s.io/pause:3.10.2", Aliases: []string{"k8s.gcr.io/pause:3.10.2"},
		Platforms: map[string]PlatformDigests{"linux/amd64": {Config: digest('c')}},
	}}}
	m, _ := mirror.Parse("mirror.local/k8s")
	// The user had pulled the mirror's name by hand before: it stays.
	f := &fakeStore{
		names:      map[string]containers.Image{"mirror.local/k8s/pause:3.10.2": good},
		registries: map[string]containers.Image{"mirror.local/k8s/pause:3.10.2": good},
	}
	if _, err := Pull(context.Background(), f, rel, PullOptions{Mirrors: []mirror.Mirror{m}}); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"registry.k8s.io/pause:3.10.2", "k8s.gcr.io/pause:3.10.2", "mirror.local/k8s/pause:3.10.2"} {
		if f.names[ref].ID != good.ID {
			t.Errorf("%s should name the pulled image", ref)
		}
	}
	if len(f.untagged) != 0 {
		t.Errorf("nothing of the user's should be untagged, got %v", f.untagged)
	}
}

func TestPullRefusesMismatchAndCleansItsOwnName(t *testing.T) {
	rel := &Release{Images: []Image{{
		Component: "pause", Name: "registry.k8s.io/pause:3.10.2",
		Platforms: map[string]PlatformDigests{"linux/amd64": {Config: digest('c')}},
	}}}
	m, _ := mirror.Parse("evil.local/k8s")
	f := &fakeStore{
		names:      map[string]containers.Image{},
		registries: map[string]containers.Image{"evil.local/k8s/pause:3.10.2": {ID: digest('f')}},
	}
	results, err := Pull(context.Background(), f, rel, PullOptions{Mirrors: []mirror.Mirror{m}})
	if err == nil || results[0].Verdict != Mismatch {
		t.Fatalf("want a mismatch, got %v, %+v", err, results)
	}
	if len(f.names) != 0 {
		t.Errorf("no name should remain for refused content, got %v", f.names)
	}
}

// With RequireVerified, an image the lock has no digest for is refused
// before it gets any name: not the canonical one, not an alias, and not the
// mirror's, which dk8s made.
func TestPullRequireVerifiedRefusesBeforeTagging(t *testing.T) {
	rel := &Release{Images: []Image{
		{Component: "pause", Name: "registry.k8s.io/pause:3.10.2", Aliases: []string{"k8s.gcr.io/pause:3.10.2"}},
		{Component: "etcd", Name: "registry.k8s.io/etcd:3.6.0-0",
			Platforms: map[string]PlatformDigests{"linux/amd64": {Config: digest('e')}}},
	}}
	m, _ := mirror.Parse("mirror.local/k8s")
	f := &fakeStore{
		names: map[string]containers.Image{},
		registries: map[string]containers.Image{
			"mirror.local/k8s/pause:3.10.2": {ID: digest('c')},
			"mirror.local/k8s/etcd:3.6.0-0": {ID: digest('e')},
		},
	}
	results, err := Pull(context.Background(), f, rel, PullOptions{Mirrors: []mirror.Mirror{m}, RequireVerified: true})
	var pe *PullError
	if !errors.As(err, &pe) || len(pe.Failed) != 1 || pe.Failed[0].Image.Component != "pause" {
		t.Fatalf("want pause alone refused, got %v", err)
	}
	pause := results[0]
	if pause.Verdict != Unverified || !errors.Is(pause.Err, ErrUnverified) {
		t.Errorf("pause: want unverified and refused, got %s, %v", pause.Verdict, pause.Err)
	}
	for _, want := range []string{"unverified", "--require-verified refused it", "images.lock has no digest for it"} {
		if pause.Err == nil || !strings.Contains(pause.Err.Error(), want) {
			t.Errorf("pause's error %v should say %q", pause.Err, want)
		}
	}
	for _, ref := range []string{"registry.k8s.io/pause:3.10.2", "k8s.gcr.io/pause:3.10.2", "mirror.local/k8s/pause:3.10.2"} {
		if _, ok := f.names[ref]; ok {
			t.Errorf("%s should have no name after the refusal", ref)
		}
	}
	if got := f.names["registry.k8s.io/etcd:3.6.0-0"]; got.ID != digest('e') || results[1].Verdict != Verified {
		t.Errorf("etcd, verified, should be pulled: %+v, %+v", got, results[1])
	}
}
