package images

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/mirror"
)

// fakeStore is a Docker image store: names to images. Registries map a
// mirror name to the image it serves. It embeds the Engine interface, so
// any call it does not override fails loudly.
type fakeStore struct {
	containers.Engine
	mu         sync.Mutex // Pull works on several images at once
	names      map[string]containers.Image
	registries map[string]containers.Image
	untagged   []string
	loadedTags []string
}

func (f *fakeStore) Version(context.Context) (containers.Version, error) {
	return containers.Version{OS: "linux", Arch: "amd64", Store: "classic"}, nil
}

func (f *fakeStore) InspectImage(_ context.Context, ref string) (containers.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	img, ok := f.names[ref]
	if !ok {
		return containers.Image{}, fmt.Errorf("%s: %w", ref, containers.ErrNotFound)
	}
	return img, nil
}

func (f *fakeStore) PullImage(_ context.Context, ref string, _ containers.PullOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	img, ok := f.registries[ref]
	if !ok {
		return fmt.Errorf("manifest for %s: %w", ref, containers.ErrNotFound)
	}
	f.names[ref] = img
	return nil
}

// TagImage takes a name or, as Docker does, an image ID as source.
func (f *fakeStore) TagImage(_ context.Context, source, target string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
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
	f.mu.Lock()
	defer f.mu.Unlock()
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

// flannel's image is docker.io's. Per image, a mirror not known to serve
// docker.io is passed over at once, with no word, retry or request (never
// one for the upstream name, unreachable behind the firewall); the next
// mirror maps it in its own layout, and the pull asks that mirror's
// docker.io host for a login.
func TestPullDockerHubImageFallsBackPastMirrorThatDoesNotServeIt(t *testing.T) {
	pauseImg, flannelImg := containers.Image{ID: digest('c')}, containers.Image{ID: digest('f')}
	rel := &Release{Images: []Image{
		{Component: "pause", Name: "registry.k8s.io/pause:3.10.2",
			Platforms: map[string]PlatformDigests{"linux/amd64": {Config: digest('c')}}},
		{Component: "flannel", Name: "docker.io/flannel/flannel:v0.28.10",
			Platforms: map[string]PlatformDigests{"linux/amd64": {Config: digest('f')}}},
	}}
	aliyun, _ := mirror.Parse("aliyun")
	daocloud, _ := mirror.Parse("daocloud")
	f := &fakeStore{
		names: map[string]containers.Image{},
		registries: map[string]containers.Image{
			"registry.aliyuncs.com/google_containers/pause:3.10.2": pauseImg,
			"docker.m.daocloud.io/flannel/flannel:v0.28.10":        flannelImg,
		},
	}
	var events []Event
	var mu sync.Mutex
	var logins []string
	results, err := Pull(context.Background(), f, rel, PullOptions{
		Mirrors: []mirror.Mirror{aliyun, daocloud},
		Events:  func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() },
		Auth: func(host string) (string, error) {
			mu.Lock()
			logins = append(logins, host)
			mu.Unlock()
			return "", nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if results[0].Mirror != "aliyun" || results[1].Mirror != "daocloud" || results[1].Verdict != Verified {
		t.Errorf("pause from %s, flannel from %s (%s); want aliyun, then daocloud, verified", results[0].Mirror, results[1].Mirror, results[1].Verdict)
	}
	if f.names["docker.io/flannel/flannel:v0.28.10"].ID != digest('f') {
		t.Errorf("flannel is not under its canonical name: %v", f.names)
	}
	if _, ok := f.names["docker.m.daocloud.io/flannel/flannel:v0.28.10"]; ok {
		t.Error("the mirror's name for flannel should be gone")
	}
	for _, e := range events {
		if e.Phase == PhaseFallback || e.Phase == PhaseRetry {
			t.Errorf("a mirror that does not serve docker.io is passed over, not retried nor reported: %+v", e)
		}
	}
	slices.Sort(logins)
	if !slices.Equal(logins, []string{"docker.m.daocloud.io", "registry.aliyuncs.com"}) {
		t.Errorf("logins asked for %v, want each image's mirror host", logins)
	}
}

// When no mirror serves an image's registry, the pull fails for that image
// alone, saying which mirrors would, and asks no registry for it.
func TestPullDockerHubImageNoMirrorServes(t *testing.T) {
	rel := &Release{Images: []Image{
		{Component: "pause", Name: "registry.k8s.io/pause:3.10.2"},
		{Component: "flannel", Name: "docker.io/flannel/flannel:v0.28.10"},
	}}
	aliyun, _ := mirror.Parse("aliyun")
	hangzhou, _ := mirror.Parse("aliyun-hangzhou")
	f := &fakeStore{
		names:      map[string]containers.Image{},
		registries: map[string]containers.Image{"registry.aliyuncs.com/google_containers/pause:3.10.2": {ID: digest('c')}},
	}
	_, err := Pull(context.Background(), f, rel, PullOptions{Mirrors: []mirror.Mirror{aliyun, hangzhou}})
	var pe *PullError
	if !errors.As(err, &pe) || len(pe.Failed) != 1 || pe.Failed[0].Image.Component != "flannel" {
		t.Fatalf("want flannel alone failed, got %v", err)
	}
	msg := pe.Error()
	for _, want := range []string{"docker.io/flannel/flannel:v0.28.10", "aliyun: not known to serve docker.io images (daocloud, upstream and mirrors given by address do)", "aliyun-hangzhou: not known to serve docker.io images"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error should say %q:\n%s", want, msg)
		}
	}
	if !errors.Is(pe.Failed[0].Err, mirror.ErrNotServed) {
		t.Errorf("flannel's error should wrap mirror.ErrNotServed: %v", pe.Failed[0].Err)
	}
}

// A login a credential helper cannot give fails that mirror at once, with
// the helper's words, and the image comes from the next: never an
// anonymous pull in its place, and no retry of what no retry mends.
func TestPullFallsBackPastMirrorWhoseLoginFails(t *testing.T) {
	pauseImg := containers.Image{ID: digest('c')}
	rel := &Release{Images: []Image{{Component: "pause", Name: "registry.k8s.io/pause:3.10.2",
		Platforms: map[string]PlatformDigests{"linux/amd64": {Config: digest('c')}}}}}
	private, _ := mirror.Parse("harbor.local/k8s")
	public, _ := mirror.Parse("mirror.local/k8s")
	f := &fakeStore{names: map[string]containers.Image{}, registries: map[string]containers.Image{
		"harbor.local/k8s/pause:3.10.2": pauseImg,
		"mirror.local/k8s/pause:3.10.2": pauseImg,
	}}
	var mu sync.Mutex
	var events []Event
	results, err := Pull(context.Background(), f, rel, PullOptions{
		Mirrors: []mirror.Mirror{private, public},
		Events:  func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() },
		Auth: func(host string) (string, error) {
			if host == "harbor.local" {
				return "", fmt.Errorf("%w: docker-credential-pass could not give the login for harbor.local", mirror.ErrCredentialHelper)
			}
			return "", nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if results[0].Mirror != "mirror.local/k8s" || len(results[0].Tried) != 1 || !strings.Contains(results[0].Tried[0].Err.Error(), "docker-credential-pass") {
		t.Errorf("pause: %+v; want it from mirror.local/k8s after harbor.local's helper failed", results[0])
	}
	for _, e := range events {
		if e.Phase == PhaseRetry {
			t.Errorf("a failed helper was retried: %+v", e)
		}
	}
}
