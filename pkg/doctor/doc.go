// Package doctor diagnoses a dk8s node after the fact: it gathers what the
// host, the node's runtime and kubelet, the PKI and the cluster say
// (Gather), then turns those facts into findings that each name what is
// wrong and how to fix it (Diagnose). Diagnose is pure, so each check is a
// small function over the facts it needs and is tested without a host.
package doctor
