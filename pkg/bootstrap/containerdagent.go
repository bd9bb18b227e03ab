package bootstrap

import "github.com/dk8s/dk8s/pkg/host"

// containerdAgent is the node's pod runtime: a containerd of dk8s's own
// with its CRI plugin on, beside Docker's, run on the host (node.go plans
// its supervisor). Its socket answering is its health.
func containerdAgent() Component {
	return Component{
		Name:      "containerd",
		Health:    Endpoint{URL: "unix://" + host.RuntimeSocket},
		Hint:      "'dk8s logs containerd'",
		HostAgent: true,
	}
}
