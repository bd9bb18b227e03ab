// Package mirror knows where a cluster's images can be pulled from when
// registry.k8s.io and docker.io cannot be reached: a catalogue of named
// mirrors and which of the two registries each serves, the mapping from a
// canonical image name to its name on a mirror (flat, as Aliyun's
// google_containers, or path-preserving, as DaoCloud), and Fallback,
// which tries an ordered list of mirrors for one image, retrying only what is
// temporary and skipping mirrors already found down.
//
// For --mirror auto, ProbeAll asks every candidate at once which of a
// release's tags it has and how quickly it answers, and Rank orders them by
// that, remembering the order for an hour (RankCache). Registry reads
// manifests over the registry API with the logins Docker's client holds
// (DockerCredentials: its credential helpers, else config.json's auths).
package mirror
