// Package bootstrap brings a dk8s control plane up from Go: its PKI (made
// here with crypto/x509, kept on the host beside the etcd data so that it
// outlives every container), the components' configuration, and their
// bring-up. It prints nothing; callers hear of progress through events.
package bootstrap
