package bootstrap

import "github.com/dk8s/dk8s/pkg/pki"

// kubeScheduler places pods; it sees its kubeconfig and nothing else, and
// listens on 127.0.0.1 only.
func kubeScheduler() Component {
	return Component{
		Name:   "kube-scheduler",
		Ports:  []int{10259},
		Health: Endpoint{URL: "https://127.0.0.1:10259/healthz"}, // self-signed in memory, as the controller-manager's
		Hint:   "'dk8s logs kube-scheduler'; it reaches the apiserver with scheduler.conf",
		Certs: func(PKIConfig) []pki.CertSpec {
			return []pki.CertSpec{{Name: "scheduler", CA: "ca", CommonName: "system:kube-scheduler", Usages: clientAuth}}
		},
		Kubeconfigs: []pki.Kubeconfig{{File: "scheduler.conf", Cert: "scheduler", CA: "ca"}},
		Flags: func(Config) map[string]string {
			return map[string]string{
				"authentication-kubeconfig": kubeconfigPath("scheduler"),
				"authorization-kubeconfig":  kubeconfigPath("scheduler"),
				"bind-address":              "127.0.0.1",
				"kubeconfig":                kubeconfigPath("scheduler"),
				"leader-elect":              "true",
			}
		},
	}
}
