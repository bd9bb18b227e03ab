package images

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/mirror"
)

// PullOptions tune Pull.
type PullOptions struct {
	Mirrors []mirror.Mirror
	// Platform is "os/arch"; empty means the daemon's own.
	Platform string
	// Parallel bounds the images pulled at once; 0 pulls them all at
	// once. The Docker daemon bounds the layers it downloads across every
	// pull (max-concurrent-downloads, 3 by default), so a second bound here
	// only held back the manifests and the unpacking: at 3 images at once
	// the pull took 1.06x the parallel 'docker pull' floor, and 0.92x with
	// all at once.
	Parallel int
	// KeepMirrorTags keeps the mirror's name for each image beside the
	// canonical ones; by default dk8s removes it (by name, never by ID).
	KeepMirrorTags bool
	// Auth returns the X-Registry-Auth value for a registry host; nil means
	// anonymous pulls. Its error (a login that cannot be had) fails the
	// mirror on that host, and the pull falls back to the next.
	Auth func(host string) (string, error)
	// Events, when set, hears of every step and of byte progress. It is
	// called from several goroutines at once.
	Events func(Event)
	// Tries bounds the attempts per mirror for temporary errors; 0 means 3.
	Tries uint
	// RequireVerified refuses images the lock has no digest for: they get
	// no canonical name and no alias, and their Result fails with
	// ErrUnverified. By default they are tagged and reported unverified.
	RequireVerified bool
}

// Result is what became of one image.
type Result struct {
	Image   Image
	Mirror  string // the mirror it came from; "" when it was already present
	Skipped bool   // present and acceptable before the pull
	Verification
	Elapsed time.Duration
	Tried   []mirror.Tried
	Err     error
}

// PullError lists the images Pull could not bring in.
type PullError struct {
	Failed []Result
}

func (e *PullError) Error() string {
	msg := fmt.Sprintf("%d of the images could not be brought in:", len(e.Failed))
	for _, r := range e.Failed {
		msg += fmt.Sprintf("\n  %s: %v", r.Image.Name, r.Err)
	}
	return msg
}

// ErrContentMismatch marks a mirror that served other content than the lock
// names under the right tag.
var ErrContentMismatch = errors.New("content does not match images.lock")

// ErrUnverified marks an image refused because it could not be verified and
// verification was required (PullOptions.RequireVerified).
var ErrUnverified = errors.New("unverified, so --require-verified refused it")

// refuseUnverified is the error of an image refused for want of
// verification; v says why it could not be verified.
func refuseUnverified(v Verification) error {
	return fmt.Errorf("%w (%s)", ErrUnverified, v.Detail)
}

// Pull brings every image of rel into the Docker image store under its
// canonical name and aliases: from the first mirror that has it and serves
// content the lock accepts. Images already present and acceptable are left
// alone, so a rerun is quick. It returns one Result per image, in the lock's
// order, and a *PullError naming those that failed. Cancelling ctx stops
// every pull; what was tagged stays tagged, and a rerun finishes the rest.
func Pull(ctx context.Context, engine containers.Engine, rel *Release, opts PullOptions) ([]Result, error) {
	if len(opts.Mirrors) == 0 {
		return nil, errors.New("no mirror to pull from")
	}
	platform, err := ResolvePlatform(ctx, engine, opts.Platform)
	if err != nil {
		return nil, err
	}
	fb := &mirror.Fallback{Mirrors: opts.Mirrors, Classify: classify, Tries: opts.Tries}
	p := &puller{engine: engine, opts: opts, platform: platform, fb: fb}
	parallel := opts.Parallel
	if parallel <= 0 {
		parallel = max(len(rel.Images), 1)
	}
	results := make([]Result, len(rel.Images))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, img := range rel.Images {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
				results[i] = p.pullOne(ctx, img)
			case <-ctx.Done():
				results[i] = Result{Image: img, Err: ctx.Err()}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return results, fmt.Errorf("pull interrupted; run it again to finish: %w", err)
	}
	var failed []Result
	for _, r := range results {
		if r.Err != nil {
			failed = append(failed, r)
		}
	}
	if len(failed) > 0 {
		return results, &PullError{Failed: failed}
	}
	return results, nil
}

// ResolvePlatform checks an "os/arch" given by the user, or returns the
// Docker daemon's own when it is empty.
func ResolvePlatform(ctx context.Context, engine containers.Engine, platform string) (string, error) {
	if platform != "" {
		if _, err := containers.ParsePlatform(platform); err != nil {
			return "", err
		}
		return platform, nil
	}
	v, err := engine.Version(ctx)
	if err != nil {
		return "", err
	}
	return v.OS + "/" + v.Arch, nil
}

type puller struct {
	engine   containers.Engine
	opts     PullOptions
	platform string
	fb       *mirror.Fallback
}

func (p *puller) emit(e Event) {
	if p.opts.Events != nil {
		p.opts.Events(e)
	}
}

func (p *puller) pullOne(ctx context.Context, img Image) Result {
	start := time.Now()
	res := Result{Image: img}
	p.emit(Event{Image: img.Name, Phase: PhaseChecking})
	if !img.Known() && p.opts.RequireVerified {
		// No mirror can change what the lock lacks: refuse before pulling,
		// so nothing of it gets a name.
		res.Verification = Verification{Unverified, "images.lock has no digest for it"}
		res.Err, res.Elapsed = refuseUnverified(res.Verification), time.Since(start)
		p.emit(Event{Image: img.Name, Phase: PhaseFailed, Err: res.Err, Verification: res.Verification})
		return res
	}
	if have, err := p.engine.InspectImage(ctx, img.Name); err == nil {
		v := Verify(img, have, p.platform)
		if v.Verdict != Mismatch {
			res.Skipped, res.Verification = true, v
			res.Err = p.tagAliases(ctx, img, img.Name)
			res.Elapsed = time.Since(start)
			p.emit(Event{Image: img.Name, Phase: PhaseSkipped, Verification: v})
			return res
		}
		p.emit(Event{Image: img.Name, Phase: PhaseReplacing, Verification: v})
	}
	retry := func(m mirror.Mirror, err error, wait time.Duration) {
		p.emit(Event{Image: img.Name, Phase: PhaseRetry, Mirror: m.Name, Err: err, Wait: wait})
	}
	m, tried, err := p.fb.DoNotify(ctx, func(ctx context.Context, m mirror.Mirror) error {
		v, err := p.fromMirror(ctx, img, m)
		res.Verification = v
		// A mirror not known to serve the image's registry was never asked:
		// nothing to report unless every mirror fails.
		if err != nil && classify(err) == mirror.Permanent && ctx.Err() == nil && !errors.Is(err, mirror.ErrNotServed) {
			p.emit(Event{Image: img.Name, Mirror: m.Name, Phase: PhaseFallback, Err: err, Verification: v})
		}
		return err
	}, retry)
	res.Tried, res.Elapsed = tried, time.Since(start)
	if err != nil {
		res.Err = err
		p.emit(Event{Image: img.Name, Phase: PhaseFailed, Err: err})
		return res
	}
	res.Mirror = m.Name
	p.emit(Event{Image: img.Name, Mirror: m.Name, Phase: PhaseDone, Verification: res.Verification})
	return res
}

// fromMirror pulls img's mirror name from m, verifies it, and names it.
func (p *puller) fromMirror(ctx context.Context, img Image, m mirror.Mirror) (Verification, error) {
	ref, err := m.Ref(img.Name)
	if err != nil {
		return Verification{}, err
	}
	_, err = p.engine.InspectImage(ctx, ref)
	hadRef := err == nil
	p.emit(Event{Image: img.Name, Mirror: m.Name, Ref: ref, Phase: PhasePulling})
	prog := newProgress(func(cur, total int64) {
		p.emit(Event{Image: img.Name, Mirror: m.Name, Ref: ref, Phase: PhaseBytes, Current: cur, Total: total})
	})
	po := containers.PullOptions{Platform: p.platform, Progress: prog.update}
	if p.opts.Auth != nil {
		host, _, _ := strings.Cut(ref, "/")
		if po.Auth, err = p.opts.Auth(host); err != nil {
			return Verification{}, err
		}
	}
	if err := p.engine.PullImage(ctx, ref, po); err != nil {
		return Verification{}, describePullErr(ref, err)
	}
	got, err := p.engine.InspectImage(ctx, ref)
	if err != nil {
		return Verification{}, fmt.Errorf("inspecting %s after its pull: %w", ref, err)
	}
	v := Verify(img, got, p.platform)
	if v.Verdict == Mismatch || (v.Verdict == Unverified && p.opts.RequireVerified) {
		if !hadRef {
			// Nothing of this content may stay under a name dk8s made.
			_ = p.engine.UntagImage(context.WithoutCancel(ctx), ref)
		}
		if v.Verdict == Unverified {
			return v, fmt.Errorf("%s: %w", ref, refuseUnverified(v))
		}
		return v, fmt.Errorf("%s: %w: %s", ref, ErrContentMismatch, v.Detail)
	}
	if err := p.engine.TagImage(ctx, ref, img.Name); err != nil {
		return v, fmt.Errorf("tagging %s as %s: %w", ref, img.Name, err)
	}
	if err := p.tagAliases(ctx, img, ref); err != nil {
		return v, err
	}
	if !p.opts.KeepMirrorTags && !hadRef && ref != img.Name {
		if err := p.engine.UntagImage(ctx, ref); err != nil {
			return v, fmt.Errorf("removing the mirror's name %s: %w", ref, err)
		}
	}
	return v, nil
}

func (p *puller) tagAliases(ctx context.Context, img Image, source string) error {
	for _, a := range img.Aliases {
		if err := p.engine.TagImage(ctx, source, a); err != nil {
			return fmt.Errorf("tagging %s as %s: %w", source, a, err)
		}
	}
	return nil
}

func classify(err error) mirror.Class {
	switch {
	case errors.Is(err, ErrContentMismatch), errors.Is(err, ErrUnverified), errors.Is(err, mirror.ErrNotServed), errors.Is(err, mirror.ErrCredentialHelper),
		containers.IsNotFound(err), containers.IsDenied(err):
		return mirror.Permanent
	case containers.IsUnreachable(err):
		return mirror.Unreachable
	case containers.IsTemporary(err):
		return mirror.Temporary
	}
	return mirror.Permanent
}

func describePullErr(ref string, err error) error {
	switch {
	case containers.IsNotFound(err):
		return fmt.Errorf("%s: not on this mirror: %w", ref, err)
	case containers.IsDenied(err):
		return fmt.Errorf("%s: access denied (for a private mirror, 'docker login' to it first): %w", ref, err)
	}
	return fmt.Errorf("pulling %s: %w", ref, err)
}
