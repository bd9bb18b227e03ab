// Package atomicfile writes a file so that a crash, a power cut or a full
// disk leaves either the old content or the new, never half of either: the
// data goes to a temporary file in the same directory, is flushed to disk,
// and is renamed over the old file, and the rename itself is flushed by
// syncing the directory. dk8s writes private keys, kubeconfigs, the node's
// configuration and binaries this way, all of which a half-written file
// would break at the next start.
package atomicfile
