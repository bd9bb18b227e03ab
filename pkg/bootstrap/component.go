package bootstrap

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/pki"
)

// Component is one part of the cluster dk8s runs, with its whole story:
// what it listens on, how its health is asked, what to check when it does
// not come up, the certificates and kubeconfigs it is issued, its command
// line, and what runs once it is ready. Each lives in a file of its own
// (etcd.go, apiserver.go, ...); the ordered list of them, Components,
// drives start, status, stop and reset (in reverse) and the host checks.
type Component struct {
	// Name is the component's name, as `dk8s logs` and `dk8s ps` take it.
	Name string
	// Ports are the host ports it listens on, checked free before a start.
	Ports []int
	// Health is how its health is asked.
	Health Endpoint
	// Hint says what to look at when it does not become healthy.
	Hint string
	// Certs are the certificates issued for it: its own CAs, its serving
	// and client certificates.
	Certs func(PKIConfig) []pki.CertSpec
	// Kubeconfigs are the client identities written for it beside the PKI.
	Kubeconfigs []pki.Kubeconfig
	// Flags are a control-plane component's command line, before
	// --extra-args; nil for a host agent.
	Flags func(Config) map[string]string
	// ImageOf names the lock component whose image a control-plane
	// component runs; "" for its own. Entrypoint is what it runs there;
	// nil for [Name].
	ImageOf    string
	Entrypoint []string
	// Mounts are host paths it needs besides the files its flags name,
	// which are bound in read-only (fileMounts).
	Mounts func(Config) []containers.Mount
	// Ready runs once it is healthy, before the next component starts.
	Ready func(ctx context.Context, cfg Config, opts StartOptions) error
	// HostAgent marks the node's agents (the runtime, kubelet): they run
	// on the host, supervised by a container in the host's namespaces or a
	// systemd unit, and start after the control plane.
	HostAgent bool
	// User, when set, is the user the container runs as over its image's:
	// dk8s on the pause image, whose upstream build declares USER
	// 65535:65535, runs as root to read its root-only (0600) credentials.
	User string
}

// Endpoint is where a component answers for its health.
type Endpoint struct {
	URL string
	// Cert names the PKI client certificate to present; "" for none.
	Cert string
	// CA names the PKI CA that signed the serving certificate; "" where the
	// component serves a self-signed certificate it made in memory (the
	// controller-manager and scheduler), checked for liveness only.
	CA string
	// Body, when set, must be in a healthy answer.
	Body string
}

// Components lists the cluster's components in start order: the control
// plane, then the node's agents. It is a new slice each call.
func Components() []Component {
	return []Component{etcd(), kubeAPIServer(), kubeControllerManager(), kubeScheduler(), csrApprover(), etcdSnapshotter(), containerdAgent(), kubeletAgent()}
}

// ComponentNames are the names of Components, in order.
func ComponentNames() []string {
	var names []string
	for _, c := range Components() {
		names = append(names, c.Name)
	}
	return names
}

func controlPlane() []Component {
	return slices.DeleteFunc(Components(), func(c Component) bool { return c.HostAgent })
}

func hostAgents() []Component {
	return slices.DeleteFunc(Components(), func(c Component) bool { return !c.HostAgent })
}

func hostAgentNames() []string {
	var names []string
	for _, c := range hostAgents() {
		names = append(names, c.Name)
	}
	return names
}

// componentNamed finds a component by its name, its container's name, or
// its name without "kube-" (what `dk8s logs` accepts).
func componentNamed(name string) (Component, error) {
	for _, c := range Components() {
		if c.Name == name || containerName(c.Name) == name || strings.TrimPrefix(c.Name, "kube-") == name {
			return c, nil
		}
	}
	return Component{}, fmt.Errorf("unknown component %q: use one of %s", name, strings.Join(ComponentNames(), ", "))
}

// reversed is the stop order of comps.
func reversed(comps []Component) []Component {
	out := slices.Clone(comps)
	slices.Reverse(out)
	return out
}

func containerName(component string) string {
	return "dk8s-" + strings.TrimPrefix(component, "kube-")
}
