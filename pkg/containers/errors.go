package containers

import (
	"context"
	"errors"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
)

// IsUnreachable tells whether err says that the daemon could not reach a
// registry at all: nothing listens there, the name does not resolve, or the
// connection timed out. Such a registry is likely down for every image.
func IsUnreachable(err error) bool {
	return containsAny(err, "connection refused", "no such host", "no route to host", "network is unreachable", "i/o timeout", "dial tcp")
}

// IsDenied tells whether err says that a registry refused access.
func IsDenied(err error) bool {
	return cerrdefs.IsUnauthorized(err) || cerrdefs.IsPermissionDenied(err) ||
		containsAny(err, "unauthorized", "denied", "authentication required",
			// A registry asking for Basic auth (htpasswd) that the pull
			// brought no login for.
			"no basic auth credentials")
}

// IsTemporary tells whether err is worth retrying against the same
// registry: anything but a missing image, a refusal, or the caller giving
// up.
func IsTemporary(err error) bool {
	if err == nil || IsNotFound(err) || IsDenied(err) {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return !containsAny(err, "invalid reference format", "not a valid repository", "does not match the specified platform", "no matching manifest")
}

func containsAny(err error, words ...string) bool {
	if err == nil {
		return false
	}
	msg := strings.ToLower(err.Error())
	for _, w := range words {
		if strings.Contains(msg, w) {
			return true
		}
	}
	return false
}
