package images

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/dk8s/dk8s/pkg/containers"
)

// archiveLockName is the archive entry that carries the lock. It comes
// first, so Load knows what to expect before the images stream in; Docker's
// own loader ignores it, so `docker load` takes the archive too.
const archiveLockName = "dk8s-images.lock"

// Save writes the images of rel, as Docker has them under their canonical
// names, to w: a `docker save` archive led by a lock of that one release.
// Every image must be present and match the lock; where the lock could only
// identify it by a registry digest (which an archive does not keep), the
// carried lock also records the config digest Docker holds, so that the
// machine that loads it can still verify it.
func Save(ctx context.Context, engine containers.Engine, rel *Release, platform string, w io.Writer) error {
	platform, err := resolvePlatform(ctx, engine, platform)
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

// Load loads an archive that Save wrote and checks every image in it
// against the lock it carries, tagging aliases. It returns that lock and a
// Result per image; an image that does not match loses the names the
// archive gave it.
func Load(ctx context.Context, engine containers.Engine, r io.Reader, platform string) (*Lock, []Result, error) {
	platform, err := resolvePlatform(ctx, engine, platform)
	if err != nil {
		return nil, nil, err
	}
	tr := tar.NewReader(r)
	hdr, err := tr.Next()
	if err != nil || hdr.Name != archiveLockName {
		return nil, nil, errors.New("not a dk8s image set: its first entry is not " + archiveLockName + " (make one with 'dk8s save')")
	}
	data, err := io.ReadAll(io.LimitReader(tr, 1<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the archive's lock: %w", err)
	}
	lock, err := ParseLock(data)
	if err != nil {
		return nil, nil, fmt.Errorf("the archive's lock: %w", err)
	}
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := copyTar(tr, tw)
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	if err := engine.LoadImages(ctx, pr); err != nil {
		pr.CloseWithError(err)
		return nil, nil, err
	}
	rel, _ := lock.Release("")
	var results []Result
	var failed []Result
	for _, img := range rel.Images {
		res := Result{Image: img}
		got, err := engine.InspectImage(ctx, img.Name)
		switch {
		case err != nil:
			res.Err = fmt.Errorf("not in the archive: %w", err)
		default:
			res.Verification = Verify(img, got, platform)
			if res.Verdict == Mismatch {
				res.Err = fmt.Errorf("%w: %s", ErrContentMismatch, res.Detail)
				for _, name := range append([]string{img.Name}, img.Aliases...) {
					_ = engine.UntagImage(ctx, name)
				}
			} else {
				for _, a := range img.Aliases {
					if err := engine.TagImage(ctx, img.Name, a); err != nil {
						res.Err = err
					}
				}
			}
		}
		if res.Err != nil {
			failed = append(failed, res)
		}
		results = append(results, res)
	}
	if len(failed) > 0 {
		return lock, results, &PullError{Failed: failed}
	}
	return lock, results, nil
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
