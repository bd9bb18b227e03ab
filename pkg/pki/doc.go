// Package pki keeps a cluster's certificates and keys in a directory on the
// host, and the kubeconfigs that embed them: it issues (with crypto/x509)
// what the directory lacks, reissues a certificate whose names no longer
// cover what it must, renews, and reports expiries. It knows no cluster:
// which certificates there are, who signs them and what they name is the
// caller's list of CertSpecs (pkg/bootstrap's Specs).
//
// Every file is written atomically (internal/atomicfile) and every private
// key is readable by its owner alone: a crash never leaves half a key, and
// a rerun never replaces a CA or a key that a running cluster trusts.
package pki
