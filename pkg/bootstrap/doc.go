// Package bootstrap brings a dk8s control plane up from Go: its PKI (the
// certificates and kubeconfigs listed here, made by pkg/pki and kept on the
// host beside the etcd data so that they outlive every container), the
// components' configuration, and their bring-up. It prints nothing; callers
// hear of progress through events.
package bootstrap
