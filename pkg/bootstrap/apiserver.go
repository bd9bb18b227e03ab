package bootstrap

import (
	"context"
	"crypto/x509"
	"net"

	"github.com/dk8s/dk8s/pkg/pki"
)

// kubeAPIServer is the cluster's front door: the one component on a
// public address, with TLS, Node and RBAC authorization and
// NodeRestriction, as kubeadm sets it.
func kubeAPIServer() Component {
	return Component{
		Name:   "kube-apiserver",
		Ports:  []int{6443},
		Health: Endpoint{URL: "https://127.0.0.1:6443/readyz", Cert: "admin", CA: "ca"},
		Hint:   "'dk8s logs kube-apiserver'; it needs etcd healthy on 127.0.0.1:2379 and its certificates under the cluster directory",
		Certs: func(cfg PKIConfig) []pki.CertSpec {
			domain := cfg.DNSDomain
			if domain == "" {
				domain = "cluster.local"
			}
			names := []string{cfg.NodeName, "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + domain}
			ips := append(cfg.hostIPs(), cfg.ServiceIP)
			if ip := net.ParseIP(cfg.Endpoint); ip != nil {
				ips = append(ips, ip)
			} else if cfg.Endpoint != "" {
				names = append(names, cfg.Endpoint)
			}
			return []pki.CertSpec{
				{Name: "front-proxy-ca", CommonName: "dk8s-front-proxy-ca"},
				{Name: "apiserver", CA: "ca", CommonName: "kube-apiserver",
					DNSNames: names,
					IPs:      ips, ExtraIPs: cfg.OtherAddresses, Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
				{Name: "apiserver-kubelet-client", CA: "ca", CommonName: "kube-apiserver-kubelet-client", Organization: []string{AdminGroup}, Usages: clientAuth},
				{Name: "apiserver-etcd-client", CA: "etcd/ca", CommonName: "kube-apiserver-etcd-client", Usages: clientAuth},
				{Name: "front-proxy-client", CA: "front-proxy-ca", CommonName: "front-proxy-client", Usages: clientAuth},
				// Its identity towards the csr-approver's audit receiver.
				{Name: "apiserver-audit-client", CA: "ca", CommonName: auditClientName, Usages: clientAuth},
			}
		},
		Flags: func(cfg Config) map[string]string {
			return map[string]string{
				"advertise-address":  cfg.AdvertiseAddress.String(),
				"allow-privileged":   "true",
				"anonymous-auth":     "true", // as kubeadm leaves it: RBAC lets anonymous reach only /livez, /readyz, /healthz, /version
				"authorization-mode": "Node,RBAC",
				// Where each certificate request came from, for the
				// csr-approver (auditPolicy).
				"audit-policy-file":                  confMount + "/" + auditPolicyFile,
				"audit-webhook-config-file":          kubeconfigPath("audit-webhook"),
				"audit-webhook-batch-max-wait":       "1s",
				"client-ca-file":                     pkiPath("ca.crt"),
				"enable-admission-plugins":           "NodeRestriction",
				"enable-bootstrap-token-auth":        "true",
				"etcd-cafile":                        pkiPath("etcd/ca.crt"),
				"etcd-certfile":                      pkiPath("apiserver-etcd-client.crt"),
				"etcd-keyfile":                       pkiPath("apiserver-etcd-client.key"),
				"etcd-servers":                       "https://127.0.0.1:2379",
				"kubelet-certificate-authority":      pkiPath("ca.crt"), // kubelets serve certificates the cluster CA signed (csr-approver)
				"kubelet-client-certificate":         pkiPath("apiserver-kubelet-client.crt"),
				"kubelet-client-key":                 pkiPath("apiserver-kubelet-client.key"),
				"kubelet-preferred-address-types":    "InternalIP,ExternalIP,Hostname",
				"proxy-client-cert-file":             pkiPath("front-proxy-client.crt"),
				"proxy-client-key-file":              pkiPath("front-proxy-client.key"),
				"requestheader-allowed-names":        "front-proxy-client",
				"requestheader-client-ca-file":       pkiPath("front-proxy-ca.crt"),
				"requestheader-extra-headers-prefix": "X-Remote-Extra-",
				"requestheader-group-headers":        "X-Remote-Group",
				"requestheader-username-headers":     "X-Remote-User",
				"secure-port":                        "6443",
				"service-account-issuer":             "https://kubernetes.default.svc.cluster.local",
				"service-account-key-file":           pkiPath("sa.pub"),
				"service-account-signing-key-file":   pkiPath("sa.key"),
				"service-cluster-ip-range":           cfg.ServiceCIDR,
				"tls-cert-file":                      pkiPath("apiserver.crt"),
				"tls-private-key-file":               pkiPath("apiserver.key"),
			}
		},
		// The admin kubeconfig's group gets cluster-admin as soon as there
		// is an apiserver to ask, and the cluster becomes joinable.
		Ready: func(ctx context.Context, cfg Config, opts StartOptions) error {
			if err := ensureAdminBinding(ctx, cfg, opts); err != nil {
				return err
			}
			return ensureJoinable(ctx, cfg, opts)
		},
	}
}

// hostIPs are the addresses a serving certificate on this host names:
// loopback and the host's.
func (c PKIConfig) hostIPs() []net.IP {
	return append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, c.Addresses...)
}
