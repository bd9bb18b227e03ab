package images

import (
	"fmt"
	"strings"

	"github.com/dk8s/dk8s/pkg/containers"
)

// Verdict is what verification concluded about an image.
type Verdict int

const (
	// Unverified: the lock holds no digest for the image, so nothing could
	// be checked. Reported, never silently trusted.
	Unverified Verdict = iota
	// Verified: the image's content is the one the lock names.
	Verified
	// Mismatch: the lock names other content than what was found.
	Mismatch
)

func (v Verdict) String() string {
	switch v {
	case Verified:
		return "verified"
	case Mismatch:
		return "MISMATCH"
	default:
		return "unverified"
	}
}

// Verification is Verify's answer: the verdict, and by what or why.
type Verification struct {
	Verdict Verdict
	Detail  string
}

// Verify checks the image Docker has (got) against the lock's entry for the
// given platform. It works on both of Docker's image stores: the classic
// one, whose image ID is the config digest, and the containerd one, whose
// image ID is the manifest or index digest. The repo digests Docker records
// for a pull by tag are the digests the registry served, so they tie a pull
// from a faithful mirror to the lock's index digest too.
func Verify(want Image, got containers.Image, platform string) Verification {
	if !want.Known() {
		return Verification{Unverified, "images.lock has no digest for it"}
	}
	pd := want.Platforms[platform]
	switch got.ID {
	case "":
	case pd.Config:
		return Verification{Verified, "config digest " + short(got.ID)}
	case want.Digest, pd.Manifest:
		return Verification{Verified, "image digest " + short(got.ID)}
	}
	var served []string
	for _, rd := range got.RepoDigests {
		_, d, ok := strings.Cut(rd, "@")
		if !ok {
			continue
		}
		if d == want.Digest || d == pd.Manifest {
			return Verification{Verified, "registry digest " + short(d)}
		}
		served = append(served, short(d))
	}
	detail := fmt.Sprintf("got image %s (registry digests %s), images.lock expects %s",
		short(got.ID), orNone(served), expected(want, platform))
	if pd.Config == "" && len(served) > 0 {
		// Only registry digests to go by: a mirror that re-serializes
		// manifest lists (Aliyun does for some images) serves the same
		// content under other ones, and dk8s cannot tell that from other
		// content.
		detail += "; a mirror that re-serializes manifests (as Aliyun does for some images) is refused so too: " +
			"list a faithful one after it (daocloud), or record config digests with 'dk8s images lock --from daocloud'"
	}
	return Verification{Mismatch, detail}
}

func expected(want Image, platform string) string {
	var parts []string
	if want.Digest != "" {
		parts = append(parts, "digest "+short(want.Digest))
	}
	pd := want.Platforms[platform]
	if pd.Manifest != "" {
		parts = append(parts, platform+" manifest "+short(pd.Manifest))
	}
	if pd.Config != "" {
		parts = append(parts, platform+" config "+short(pd.Config))
	}
	if len(parts) == 0 {
		return "digests for other platforms only (none for " + platform + ")"
	}
	return strings.Join(parts, " or ")
}

func short(d string) string {
	if len(d) > 19 && strings.HasPrefix(d, "sha256:") {
		return d[:19]
	}
	return d
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// verifyLoaded checks an image loaded from an archive against the lock's
// entry for platform. Only the image ID counts: Docker derives it from the
// content it loaded (on the classic store the config digest, on the
// containerd one the manifest or index digest), while the registry digests
// Verify also accepts do not survive an archive. So on the classic store an
// image the lock knows only by registry digests cannot be checked: it is
// unverified, never verified.
func verifyLoaded(want Image, got containers.Image, platform, store string) Verification {
	if !want.Known() {
		return Verification{Unverified, "images.lock has no digest for it"}
	}
	pd := want.Platforms[platform]
	if got.ID != "" {
		if got.ID == pd.Config {
			return Verification{Verified, "config digest " + short(got.ID)}
		}
		if store == "containerd" && (got.ID == want.Digest || got.ID == pd.Manifest) {
			return Verification{Verified, "image digest " + short(got.ID)}
		}
	}
	if store != "containerd" && pd.Config == "" && (want.Digest != "" || pd.Manifest != "") {
		return Verification{Unverified, fmt.Sprintf("images.lock knows it for %s only by registry digests, which an archive does not keep; "+
			"record its config digests with 'dk8s images lock --from REGISTRY' to verify it from an archive", platform)}
	}
	return Verification{Mismatch, fmt.Sprintf("the archive holds image %s, images.lock expects %s", short(got.ID), expected(want, platform))}
}
