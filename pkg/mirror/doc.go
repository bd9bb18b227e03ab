// Package mirror knows where a cluster's images and host binaries can be
// fetched from when registry.k8s.io, docker.io and dl.k8s.io cannot be
// reached: a catalogue of named image mirrors and which of the two
// registries each serves, the mapping from a canonical image name to its
// name on a mirror (flat, as Aliyun's google_containers, or
// path-preserving, as DaoCloud), and Fallback, which tries an ordered list
// of mirrors for one image, retrying only what is temporary and skipping
// mirrors already found down.
//
// For --mirror auto, ProbeAll asks every candidate at once which of a
// release's tags it has and how quickly it answers, and Rank orders them by
// that, remembering the order for an hour (RankCache). Registry reads
// manifests over the registry API with the logins Docker's client holds
// (DockerCredentials: its credential helpers, else config.json's auths).
//
// Beside them, a catalogue of binary mirrors (KubeKey's China buckets,
// DaoCloud's file mirror, dl.k8s.io), which keep dl.k8s.io's paths below a
// base URL, and the binary mirrors each image mirror implies
// (ImpliedBinary); the downloads themselves are pkg/host's.
package mirror
