package bootstrap

import "github.com/dk8s/dk8s/pkg/pki"

// kubeControllerManager runs the controllers, signs kubelets' certificate
// requests with the cluster CA (so it alone mounts ca.key) and the
// service-account tokens; on 127.0.0.1 only.
func kubeControllerManager() Component {
	return Component{
		Name:  "kube-controller-manager",
		Ports: []int{10257},
		// A self-signed certificate made in memory, as under kubeadm: the
		// probe checks liveness and sends no credentials.
		Health: Endpoint{URL: "https://127.0.0.1:10257/healthz"},
		Hint:   "'dk8s logs kube-controller-manager'; it reaches the apiserver with controller-manager.conf",
		Certs: func(PKIConfig) []pki.CertSpec {
			return []pki.CertSpec{{Name: "controller-manager", CA: "ca", CommonName: "system:kube-controller-manager", Usages: clientAuth}}
		},
		Kubeconfigs: []pki.Kubeconfig{{File: "controller-manager.conf", Cert: "controller-manager", CA: "ca"}},
		Flags: func(cfg Config) map[string]string {
			return map[string]string{
				"allocate-node-cidrs":       "true",
				"authentication-kubeconfig": kubeconfigPath("controller-manager"),
				"authorization-kubeconfig":  kubeconfigPath("controller-manager"),
				"bind-address":              "127.0.0.1",
				"client-ca-file":            pkiPath("ca.crt"),
				"cluster-cidr":              cfg.PodCIDR,
				"cluster-name":              cfg.ClusterName,
				"cluster-signing-cert-file": pkiPath("ca.crt"), // signs kubelet CSRs, so certificate rotation works
				"cluster-signing-key-file":  pkiPath("ca.key"),
				"controllers":               "*,bootstrapsigner,tokencleaner",
				"kubeconfig":                kubeconfigPath("controller-manager"),
				// Upstream's 20 and 30 requests a second held a new
				// cluster's node back by about 5 s: each of some forty
				// controllers gets its own service account and token
				// before the informers start, and the node's pod range
				// comes only after. OpenShift runs it at 150 and 300.
				"kube-api-qps":                     "100",
				"kube-api-burst":                   "200",
				"leader-elect":                     "true",
				"requestheader-client-ca-file":     pkiPath("front-proxy-ca.crt"),
				"root-ca-file":                     pkiPath("ca.crt"),
				"service-account-private-key-file": pkiPath("sa.key"),
				"service-cluster-ip-range":         cfg.ServiceCIDR,
				"use-service-account-credentials":  "true",
			}
		},
	}
}
