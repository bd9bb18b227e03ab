package images

import (
	"context"
	"fmt"

	"github.com/dk8s/dk8s/pkg/mirror"
)

// Resolver reads digests from a registry; *mirror.Registry is one.
type Resolver interface {
	Resolve(ctx context.Context, ref string, platforms []string) (mirror.Resolved, error)
}

// Refresh fills in the digests of every image of rel from what its names
// resolve to on m (upstream, or a mirror), for the platforms given, and
// returns the refreshed release. This is how a maintainer bumps the lock and
// how tests make a lock for images they built. Resolve from upstream or a
// faithful mirror to record upstream's index digests; a mirror that
// re-serializes manifests yields its own top digests, though the same config
// digests.
func Refresh(ctx context.Context, r Resolver, m mirror.Mirror, rel Release, platforms []string) (Release, error) {
	out := rel
	out.Images = make([]Image, len(rel.Images))
	for i, img := range rel.Images {
		ref, err := m.Ref(img.Name)
		if err != nil {
			return Release{}, fmt.Errorf("%s: %s is %w", img.Component, m.Name, err)
		}
		res, err := r.Resolve(ctx, ref, platforms)
		if err != nil {
			return Release{}, fmt.Errorf("%s: %w", img.Component, err)
		}
		if len(res.Platforms) == 0 {
			return Release{}, fmt.Errorf("%s: %s has none of the platforms %v", img.Component, ref, platforms)
		}
		img.Digest = res.Digest
		img.Platforms = map[string]PlatformDigests{}
		for p, d := range res.Platforms {
			img.Platforms[p] = PlatformDigests{Manifest: d.Manifest, Config: d.Config}
		}
		out.Images[i] = img
	}
	return out, nil
}

// WithRelease returns a copy of l with rel in place of the release of the
// same version, or added when there is none.
func (l *Lock) WithRelease(rel Release) *Lock {
	out := *l
	out.Releases = append([]Release(nil), l.Releases...)
	for i := range out.Releases {
		if out.Releases[i].Kubernetes == rel.Kubernetes {
			out.Releases[i] = rel
			return &out
		}
	}
	out.Releases = append(out.Releases, rel)
	return &out
}

// RefreshLock is `dk8s images lock`: it resolves the images of rel (a
// release of lock, or one to add to it) on m for platforms, and returns
// lock as a lock file with that release's digests replaced by what m
// serves and every other release as it was.
func RefreshLock(ctx context.Context, r Resolver, m mirror.Mirror, lock *Lock, rel Release, platforms []string) ([]byte, error) {
	fresh, err := Refresh(ctx, r, m, rel, platforms)
	if err != nil {
		return nil, err
	}
	return lock.WithRelease(fresh).Marshal()
}
