package containers

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sort"
)

// Labels dk8s puts on every container it makes. They are its only state:
// what exists, which component it runs, and from which spec, is read back
// from the daemon rather than kept in a file that could disagree with it.
const (
	LabelComponent = "io.dk8s.component"
	LabelCluster   = "io.dk8s.cluster"
	LabelSpecHash  = "io.dk8s.spec-hash"
	LabelDir       = "io.dk8s.dir"
	// LabelConfigHash carries a hash of the files a host agent reads, so
	// that a changed configuration replaces its container.
	LabelConfigHash = "io.dk8s.config-hash"
	// LabelVersion is the version of the host binary a node container
	// runs (its image is only a carrier).
	LabelVersion = "io.dk8s.version"
)

// Spec is a container as dk8s wants it: a plan, made by a pure function and
// applied separately, so that planning can be tested without a daemon.
type Spec struct {
	Name        string            `json:"name"`
	Image       string            `json:"image"`
	Entrypoint  []string          `json:"entrypoint,omitempty"`
	Args        []string          `json:"args,omitempty"`
	Env         []string          `json:"env,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Mounts      []Mount           `json:"mounts,omitempty"`
	HostNetwork bool              `json:"hostNetwork,omitempty"`
	// RestartAlways asks the daemon to restart the container whenever it
	// stops, and at daemon start.
	RestartAlways bool `json:"restartAlways,omitempty"`
	// HostNamespaces puts the container in the host's pid, ipc, uts and
	// cgroup namespaces, for a host agent (kubelet, the runtime) that only
	// uses the container as Docker's handle to supervise it.
	HostNamespaces bool `json:"hostNamespaces,omitempty"`
	// Privileged gives every capability and device the host can give.
	Privileged bool `json:"privileged,omitempty"`
	// User is the user (and group) the entrypoint runs as, over the
	// image's USER; "" keeps the image's.
	User string `json:"user,omitempty"`
}

// Mount binds a host path into the container.
type Mount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly,omitempty"`
	// Propagation is the bind's mount propagation, e.g. "rshared", so that
	// mounts made under it (pod volumes) reach the host.
	Propagation string `json:"propagation,omitempty"`
}

// Hash identifies everything about the spec but its own hash label: when a
// running container's label differs from the plan's hash, it must be
// replaced; when it is equal, a rerun leaves it alone.
func (s Spec) Hash() string {
	c := s
	c.Labels = map[string]string{}
	for k, v := range s.Labels {
		if k != LabelSpecHash {
			c.Labels[k] = v
		}
	}
	// encoding/json writes map keys sorted, so equal specs hash equal.
	data, _ := json.Marshal(c)
	return fmt.Sprintf("%x", sha256.Sum256(data))[:16]
}

// WithHash returns the spec with its hash label set.
func (s Spec) WithHash() Spec {
	labels := map[string]string{}
	for k, v := range s.Labels {
		labels[k] = v
	}
	s.Labels = labels
	s.Labels[LabelSpecHash] = s.Hash()
	return s
}

// Flags renders a flag map as sorted --name=value arguments, so that the
// same flags always make the same command line and the same hash.
func Flags(flags map[string]string) []string {
	var names []string
	for n := range flags {
		names = append(names, n)
	}
	sort.Strings(names)
	args := make([]string, 0, len(names))
	for _, n := range names {
		args = append(args, "--"+n+"="+flags[n])
	}
	return args
}
