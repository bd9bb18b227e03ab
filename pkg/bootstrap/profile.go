package bootstrap

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Profile is what a node trades between memory and CPU. Every part of a
// node is a Go program (etcd, the apiserver, the controller-manager, the
// scheduler, kubelet, the pod runtime, kube-proxy, CoreDNS, flannel and
// dk8s's own), and a Go program idles at up to twice the memory it holds,
// for Go collects garbage only when the heap has doubled (GOGC=100).
type Profile string

const (
	// ProfileDefault runs every part as upstream ships it.
	ProfileDefault Profile = "default"
	// ProfileSmall is for machines of 1 to 2 GB: every Go part of the
	// node collects garbage once its heap has grown by a quarter
	// (GOGC=25), which holds each close to what it uses, for more CPU
	// spent collecting. Nothing is turned off: the same components, the
	// same API, the same add-ons.
	ProfileSmall Profile = "small"
)

// smallGOGC is the small profile's GOGC.
const smallGOGC = "25"

// Profiles are the profiles there are, in the order --help lists them.
var Profiles = []Profile{ProfileDefault, ProfileSmall}

// ParseProfile checks a --profile.
func ParseProfile(s string) (Profile, error) {
	for _, p := range Profiles {
		if string(p) == s {
			return p, nil
		}
	}
	var names []string
	for _, p := range Profiles {
		names = append(names, string(p))
	}
	return "", fmt.Errorf("--profile %q: use one of %s (small: for machines of 1 to 2 GB)", s, strings.Join(names, ", "))
}

// env is the environment every Go program of the node runs with under p,
// as NAME=VALUE: none for the default, so that a node of the default
// profile runs what it ran before profiles existed (and a rerun replaces
// nothing).
func (p Profile) env() []string {
	if p == ProfileSmall {
		return []string{"GOGC=" + smallGOGC}
	}
	return nil
}

// podEnv is env for an add-on's container.
func (p Profile) podEnv() []corev1.EnvVar {
	var out []corev1.EnvVar
	for _, kv := range p.env() {
		k, v, _ := strings.Cut(kv, "=")
		out = append(out, corev1.EnvVar{Name: k, Value: v})
	}
	return out
}

// profileEnvNames are the names of every variable a profile sets.
func profileEnvNames() []string {
	var names []string
	for _, q := range Profiles {
		for _, kv := range q.env() {
			k, _, _ := strings.Cut(kv, "=")
			if !slices.Contains(names, k) {
				names = append(names, k)
			}
		}
	}
	return names
}

// coreDNSReplicas is how many CoreDNS a new cluster of p runs: kubeadm's
// 2 (0), or for the small profile one, some 20 MiB less.
func (p Profile) coreDNSReplicas() int32 {
	if p == ProfileSmall {
		return 1
	}
	return 0
}
