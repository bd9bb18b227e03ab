// Package images is the image set a dk8s cluster runs: images.lock, which
// names every image per Kubernetes version with the digests that identify
// it, and the work that brings that set into a Docker image store through
// mirrors (Pull), checks it (Verify), and carries it to machines without a
// registry (Save, Load).
package images
