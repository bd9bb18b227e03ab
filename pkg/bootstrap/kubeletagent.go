package bootstrap

import "github.com/dk8s/dk8s/pkg/pki"

// kubeletAgent is the node's kubelet, run on the host (node.go plans its
// supervisor and command line): its API on the node's address with
// webhook authentication, its health on 127.0.0.1, and its own
// system:node identity, rotated by the controller-manager.
func kubeletAgent() Component {
	return Component{
		Name:   "kubelet",
		Ports:  []int{10250, 10248},
		Health: Endpoint{URL: "http://127.0.0.1:10248/healthz"},
		Hint:   "'dk8s logs kubelet'",
		Certs: func(cfg PKIConfig) []pki.CertSpec {
			return []pki.CertSpec{{Name: "kubelet", CA: "ca", CommonName: "system:node:" + cfg.NodeName, Organization: []string{"system:nodes"}, Usages: clientAuth}}
		},
		Kubeconfigs: []pki.Kubeconfig{{File: "kubelet.conf", Cert: "kubelet", CA: "ca"}},
		HostAgent:   true,
	}
}
