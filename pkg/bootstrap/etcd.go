package bootstrap

import (
	"crypto/x509"
	"net"
	"path/filepath"

	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/pki"
)

// etcdData is where etcd keeps its data inside its container; the host's
// DIR/etcd is bound there.
const etcdData = "/var/lib/etcd"

// etcd is the cluster's store: on 127.0.0.1 only, client certificates from
// its own CA required on every port but the plain metrics one, its data on
// the host.
func etcd() Component {
	return Component{
		Name:  "etcd",
		Ports: []int{2379, 2380, 2381},
		// Serializable: the member's own health, which a learner (a
		// control plane joining) answers too, where the default asks for a
		// linearizable read only voters serve.
		Health: Endpoint{URL: "https://127.0.0.1:2379/health?serializable=true", Cert: "etcd/healthcheck-client", CA: "etcd/ca", Body: `"health":"true"`},
		Hint:   "'dk8s logs etcd'; a full disk under the cluster directory or a data directory from another cluster stops etcd",
		Certs: func(cfg PKIConfig) []pki.CertSpec {
			both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
			ips := cfg.hostIPs()
			return []pki.CertSpec{
				{Name: "etcd/ca", CommonName: "dk8s-etcd-ca"},
				{Name: "etcd/server", CA: "etcd/ca", CommonName: cfg.NodeName, DNSNames: []string{cfg.NodeName, "localhost"}, IPs: ips, ExtraIPs: cfg.OtherAddresses, Usages: both},
				{Name: "etcd/peer", CA: "etcd/ca", CommonName: cfg.NodeName, DNSNames: []string{cfg.NodeName, "localhost"}, IPs: ips, ExtraIPs: cfg.OtherAddresses, Usages: both},
				// dk8s's own health probe.
				{Name: "etcd/healthcheck-client", CA: "etcd/ca", CommonName: "kube-etcd-healthcheck-client", Usages: clientAuth},
			}
		},
		Flags: func(cfg Config) map[string]string {
			client, peer := "https://127.0.0.1:2379", "https://127.0.0.1:2380"
			listenClient, listenPeer := client, peer
			if cfg.HA {
				// The other members and joining control planes reach it at
				// the advertise address; the apiserver here stays on loopback.
				client, peer = etcdClientURL(cfg.AdvertiseAddress), etcdPeerURL(cfg.AdvertiseAddress)
				listenClient, listenPeer = "https://127.0.0.1:2379,"+client, peer
			}
			initial := cfg.EtcdInitialCluster
			if initial == "" {
				initial = cfg.NodeName + "=" + peer
			}
			flags := map[string]string{
				"name":                        cfg.NodeName,
				"data-dir":                    etcdData,
				"listen-client-urls":          listenClient,
				"advertise-client-urls":       client,
				"listen-peer-urls":            listenPeer,
				"initial-advertise-peer-urls": peer,
				"initial-cluster":             initial,
				"listen-metrics-urls":         "http://127.0.0.1:2381",
				"client-cert-auth":            "true",
				"peer-client-cert-auth":       "true",
				"cert-file":                   pkiPath("etcd/server.crt"),
				"key-file":                    pkiPath("etcd/server.key"),
				"trusted-ca-file":             pkiPath("etcd/ca.crt"),
				"peer-cert-file":              pkiPath("etcd/peer.crt"),
				"peer-key-file":               pkiPath("etcd/peer.key"),
				"peer-trusted-ca-file":        pkiPath("etcd/ca.crt"),
				"snapshot-count":              "10000",
			}
			if cfg.EtcdClusterState != "" {
				flags["initial-cluster-state"] = cfg.EtcdClusterState
			}
			return flags
		},
		Mounts: func(cfg Config) []containers.Mount {
			return []containers.Mount{{Source: filepath.Join(cfg.Dir, "etcd"), Target: etcdData}}
		},
		Ready: etcdReady,
	}
}

// etcdClientURL and etcdPeerURL are where a control plane's etcd answers
// the other members and joining control planes.
func etcdClientURL(addr net.IP) string { return "https://" + net.JoinHostPort(addr.String(), "2379") }
func etcdPeerURL(addr net.IP) string   { return "https://" + net.JoinHostPort(addr.String(), "2380") }
