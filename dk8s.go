// Package dk8s holds what the dk8s binary and library ship with: the image
// lock that names every image a cluster runs.
package dk8s

import _ "embed"

// DefaultLock is images.lock as this build of dk8s was released with it.
//
//go:embed images.lock
var DefaultLock []byte
