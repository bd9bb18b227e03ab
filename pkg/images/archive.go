package images

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dk8s/dk8s/pkg/containers"
)

// archiveLockName is the archive entry that carries the lock. It comes
// first, so Load knows which release the archive claims to hold before the
// images stream in; Docker's own loader ignores it, so `docker load` takes
// the archive too.
const archiveLockName = "dk8s-images.lock"

// Save writes the images of rel, as Docker has them under their canonical
// names, to w: a `docker save` archive led by a lock of that one release.
// Every image must be present and match the lock; where the lock could only
// identify it by a registry digest (which an archive does not keep), the
// carried lock also records the config digest Docker holds. The carried lock
// is only what the archive claims to be: Load checks the images against the
// lock of the machine that loads it.
func Save(ctx context.Context, engine containers.Engine, rel *Release, platform string, w io.Writer) error {
	platform, err := ResolvePlatform(ctx, engine, platform)
	if err != nil {
		return err
	}
	v, err := engine.Version(ctx)
	if err != nil {
		return err
	}
	carried := Release{Kubernetes: rel.Kubernetes, Binaries: rel.Binaries}
	var refs []string
	for _, img := range rel.Images {
		got, err := engine.InspectImage(ctx, img.Name)
		if containers.IsNotFound(err) {
			return fmt.Errorf("%s is not in Docker's image store: run 'dk8s pull' first", img.Name)
		} else if err != nil {
			return err
		}
		if vf := Verify(img, got, platform); vf.Verdict == Mismatch {
			return fmt.Errorf("%s does not match images.lock (%s): run 'dk8s pull' to replace it", img.Name, vf.Detail)
		} else if vf.Verdict == Verified && v.Store == "classic" {
			img.Platforms = clonePlatforms(img.Platforms)
			pd := img.Platforms[platform]
			pd.Config = got.ID
			img.Platforms[platform] = pd
		}
		carried.Images = append(carried.Images, img)
		refs = append(refs, img.Name)
		refs = append(refs, img.Aliases...)
	}
	lock := &Lock{APIVersion: lockAPIVersion, Kind: lockKind, Default: rel.Kubernetes, Releases: []Release{carried}}
	data, err := lock.Marshal()
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	hdr := &tar.Header{Name: archiveLockName, Mode: 0o644, Size: int64(len(data)), ModTime: time.Now(), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	rc, err := engine.SaveImages(ctx, refs)
	if err != nil {
		return fmt.Errorf("saving images: %w", err)
	}
	defer rc.Close()
	if err := copyTar(tar.NewReader(rc), tw); err != nil {
		return fmt.Errorf("saving images: %w", err)
	}
	return tw.Close()
}

// LoadOptions tune Load.
type LoadOptions struct {
	// Platform is "os/arch"; empty means the daemon's own.
	Platform string
	// Kubernetes is the version the archive must hold; empty means the one
	// its own lock says it holds.
	Kubernetes string
	// RequireVerified refuses images that cannot be verified, as
	// PullOptions.RequireVerified does.
	RequireVerified bool
}

// Loaded is what Load made of an archive.
type Loaded struct {
	// Release is the release of the trusted lock the archive was checked
	// against.
	Release *Release
	// Results has one Result per image of Release, in its order.
	Results []Result
	// Ignored lists the names the archive gave that belong to no image of
	// Release: what they named was loaded under no name.
	Ignored []string
}

// maxLockSize bounds the carried lock Load reads into memory.
const maxLockSize = 1 << 20

// Load loads an archive that Save wrote and checks every image in it
// against trusted, the lock dk8s trusts. The lock the archive carries is
// only a claim: it says which Kubernetes version the archive holds, and the
// images are checked against trusted's release of that version.
//
// Whoever can alter the archive can alter its lock and the names its
// images load under, so nothing in it names an image directly: every image
// loads under a quarantine name of its own, and only once its content is
// checked does it get its canonical name and aliases. An image that does not
// match the lock keeps no name at all, and an image already in the store is
// never replaced by one that does not match. Load returns what it made of
// the archive and a *PullError naming the images it could not bring in;
// the images that passed have their names.
func Load(ctx context.Context, engine containers.Engine, trusted *Lock, r io.Reader, opts LoadOptions) (loaded *Loaded, err error) {
	s, err := Stage(ctx, engine, trusted, r, opts)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, s.Close(ctx)) }()
	return s.Commit(ctx)
}

// Staged is an archive loaded under quarantine names with every image
// checked against the trusted lock, and no name given yet: Commit gives the
// names, Close drops what was loaded. For a caller that takes an archive
// whole or not at all (a bundle, whose other parts are checked too).
type Staged struct {
	engine  containers.Engine
	q       *quarantine
	loaded  Loaded
	sources []string // per result, the image ID that gets its names
}

// Stage loads the archive r under quarantine names and checks each image
// of the release it holds, as Load does, naming none of them. The caller
// must Close it.
func Stage(ctx context.Context, engine containers.Engine, trusted *Lock, r io.Reader, opts LoadOptions) (*Staged, error) {
	v, err := engine.Version(ctx)
	if err != nil {
		return nil, err
	}
	a := &admitter{engine: engine, store: v.Store, requireVerified: opts.RequireVerified}
	if a.platform = opts.Platform; a.platform == "" {
		a.platform = v.OS + "/" + v.Arch
	} else if _, err := containers.ParsePlatform(a.platform); err != nil {
		return nil, err
	}
	tr := tar.NewReader(r)
	rel, err := claimedRelease(tr, trusted, opts.Kubernetes)
	if err != nil {
		return nil, err
	}
	if a.q, err = newQuarantine(); err != nil {
		return nil, err
	}
	s := &Staged{engine: engine, q: a.q}
	if err := a.q.load(ctx, engine, tr); err != nil {
		return nil, errors.Join(err, s.Close(ctx))
	}
	s.loaded = Loaded{Release: rel, Ignored: a.q.outside(rel)}
	for _, img := range rel.Images {
		res, source := a.check(ctx, img)
		s.loaded.Results = append(s.loaded.Results, res)
		s.sources = append(s.sources, source)
	}
	return s, nil
}

// Loaded is what was staged: each image's verdict, and its error where it
// may not be named. Skipped and the names are as Commit would leave them.
func (s *Staged) Loaded() *Loaded { return &s.loaded }

// Failed returns the results that Commit would not name.
func (s *Staged) Failed() []Result {
	var failed []Result
	for _, res := range s.loaded.Results {
		if res.Err != nil {
			failed = append(failed, res)
		}
	}
	return failed
}

// Commit gives every image that passed its canonical name and aliases,
// and returns a *PullError naming those that did not.
func (s *Staged) Commit(ctx context.Context) (*Loaded, error) {
	for i := range s.loaded.Results {
		res := &s.loaded.Results[i]
		if res.Err == nil {
			res.Err = tagNames(ctx, s.engine, s.sources[i], append([]string{res.Image.Name}, res.Image.Aliases...))
		}
	}
	if failed := s.Failed(); len(failed) > 0 {
		return &s.loaded, &PullError{Failed: failed}
	}
	return &s.loaded, nil
}

// Close removes the quarantine names, whatever happened, interrupted or
// not: by name, so content that has other names keeps them, and content
// that was never named goes.
func (s *Staged) Close(ctx context.Context) error {
	return s.q.clear(context.WithoutCancel(ctx), s.engine)
}

// claimedRelease reads the lock Save put first in the archive and returns
// trusted's release of the version that lock says the archive holds.
func claimedRelease(tr *tar.Reader, trusted *Lock, version string) (*Release, error) {
	carried, err := readCarriedLock(tr)
	if err != nil {
		return nil, err
	}
	return trustedRelease(trusted, carried, version)
}

// readCarriedLock reads the lock Save put first in the archive.
func readCarriedLock(tr *tar.Reader) (*Lock, error) {
	hdr, err := tr.Next()
	if err != nil || hdr.Name != archiveLockName || hdr.Typeflag != tar.TypeReg {
		return nil, errors.New("not a dk8s image set: its first entry is not " + archiveLockName + " (make one with 'dk8s save')")
	}
	data, err := readEntry(tr, hdr, maxLockSize)
	if err != nil {
		return nil, err
	}
	lock, err := ParseLock(data)
	if err != nil {
		return nil, fmt.Errorf("the archive's lock: %w", err)
	}
	return lock, nil
}

// trustedRelease is trusted's release of the version the archive's lock
// says it holds; version, when set, is the one the user asked for.
func trustedRelease(trusted, carried *Lock, version string) (*Release, error) {
	claimed := carried.Default
	if version != "" && strings.TrimPrefix(version, "v") != strings.TrimPrefix(claimed, "v") {
		return nil, fmt.Errorf("the archive holds Kubernetes %s, not %s: load it without --kubernetes-version, or carry in an archive of %s", claimed, version, version)
	}
	rel, err := trusted.Release(claimed)
	if err != nil {
		return nil, fmt.Errorf("the archive says it holds Kubernetes %s, which the image lock dk8s trusts has no release of (it has %s); the archive's own lock is not trusted: load it with --lock naming a lock that has %s",
			claimed, strings.Join(trusted.Versions(), ", "), claimed)
	}
	return rel, nil
}

// admitter gives the images Load brought in their names, once checked.
type admitter struct {
	engine          containers.Engine
	q               *quarantine
	platform, store string
	requireVerified bool
}

// check verifies img's content as loaded, and returns its result and
// the image ID that should get its names (none when res.Err is set).
func (a *admitter) check(ctx context.Context, img Image) (res Result, source string) {
	res = Result{Image: img}
	qname, ok := a.q.nameOf(img)
	if !ok {
		res.Err = errors.New("not in the archive")
		return res, ""
	}
	got, err := a.engine.InspectImage(ctx, qname)
	if err != nil {
		res.Err = fmt.Errorf("the archive names it, but Docker loaded no image for it: %w", err)
		return res, ""
	}
	res.Verification = verifyLoaded(img, got, a.platform, a.store)
	switch {
	case res.Verdict == Mismatch:
		res.Err = fmt.Errorf("%w: %s", ErrContentMismatch, res.Detail)
		return res, ""
	case res.Verdict == Unverified && a.requireVerified:
		res.Err = refuseUnverified(res.Verification)
		return res, ""
	case res.Verdict == Unverified:
		// One that could not be checked never displaces one that was.
		if have, err := a.engine.InspectImage(ctx, img.Name); err == nil && have.ID != got.ID {
			if hv := Verify(img, have, a.platform); hv.Verdict == Verified {
				res.Skipped, res.Verification = true, hv
				return res, have.ID
			}
		}
	}
	// By ID, not by the quarantine name: what gets the names is exactly
	// the content that was checked.
	return res, got.ID
}

func tagNames(ctx context.Context, engine containers.Engine, source string, names []string) error {
	for _, name := range names {
		if err := engine.TagImage(ctx, source, name); err != nil {
			return fmt.Errorf("tagging %s as %s: %w", short(source), name, err)
		}
	}
	return nil
}

func copyTar(tr *tar.Reader, tw *tar.Writer) error {
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

func clonePlatforms(m map[string]PlatformDigests) map[string]PlatformDigests {
	out := map[string]PlatformDigests{}
	for k, v := range m {
		out[k] = v
	}
	return out
}
