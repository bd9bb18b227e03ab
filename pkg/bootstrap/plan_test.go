package bootstrap

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/dk8s/dk8s"
	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/images"
)

func testPlan(t *testing.T, extra map[string]map[string]string) []containers.Spec {
	t.Helper()
	lock, err := images.ParseLock(dk8s.DefaultLock)
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := lock.Release("")
	specs, err := Plan(Config{
		ClusterName: "dk8s", Dir: "/var/lib/dk8s", NodeName: "node-1",
		AdvertiseAddress: net.ParseIP("192.0.2.10"), ServiceCIDR: "10.96.0.0/12", PodCIDR: "10.244.0.0/16",
		ExtraArgs: extra,
	}, rel)
	if err != nil {
		t.Fatal(err)
	}
	return specs
}

func byName(specs []containers.Spec) map[string]containers.Spec {
	m := map[string]containers.Spec{}
	for _, s := range specs {
		m[s.Name] = s
	}
	return m
}

func TestPlanShape(t *testing.T) {
	specs := testPlan(t, nil)
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
		if !s.HostNetwork || !s.RestartAlways {
			t.Errorf("%s: want host network and restart=always", s.Name)
		}
		if s.Labels[containers.LabelCluster] != "dk8s" || s.Labels[containers.LabelSpecHash] != s.Hash() {
			t.Errorf("%s: labels %v", s.Name, s.Labels)
		}
		if !strings.HasPrefix(s.Image, "registry.k8s.io/") {
			t.Errorf("%s: image %s should be the canonical name", s.Name, s.Image)
		}
		for _, m := range s.Mounts {
			if m.Source == "/var/lib/dk8s" || m.Source == "/var/lib/dk8s/pki" {
				t.Errorf("%s: the whole cluster directory or PKI is mounted: %+v", s.Name, m)
			}
			// etcd's data, and the snapshots the snapshotter writes.
			if m.Target != "/var/lib/etcd" && m.Target != "/var/lib/dk8s-snapshots" && !m.ReadOnly {
				t.Errorf("%s: %s should be mounted read-only", s.Name, m.Source)
			}
		}
	}
	if got := strings.Join(names, " "); got != "dk8s-etcd dk8s-apiserver dk8s-controller-manager dk8s-scheduler dk8s-csr-approver dk8s-etcd-snapshotter" {
		t.Errorf("start order %s", got)
	}
}

func TestPlanFlagsAreKubeadms(t *testing.T) {
	s := byName(testPlan(t, nil))
	want := map[string][]string{
		"dk8s-etcd": {"--listen-client-urls=https://127.0.0.1:2379", "--client-cert-auth=true", "--peer-client-cert-auth=true",
			"--listen-metrics-urls=http://127.0.0.1:2381", "--data-dir=/var/lib/etcd"},
		"dk8s-apiserver": {"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
			"--etcd-servers=https://127.0.0.1:2379", "--secure-port=6443", "--advertise-address=192.0.2.10"},
		"dk8s-controller-manager": {"--bind-address=127.0.0.1", "--cluster-signing-cert-file=/etc/dk8s/pki/ca.crt",
			"--use-service-account-credentials=true", "--service-account-private-key-file=/etc/dk8s/pki/sa.key"},
		"dk8s-scheduler": {"--bind-address=127.0.0.1", "--leader-elect=true"},
	}
	for name, flags := range want {
		for _, f := range flags {
			if !slices.Contains(s[name].Args, f) {
				t.Errorf("%s lacks %s; has %v", name, f, s[name].Args)
			}
		}
	}
	for _, a := range s["dk8s-apiserver"].Args {
		if strings.HasPrefix(a, "--insecure-port") || strings.HasPrefix(a, "--etcd-servers=http:") {
			t.Errorf("apiserver flag %s opens something without TLS", a)
		}
	}
	// dk8s on the pause image (upstream's declares USER 65535:65535) reads
	// root-only credentials: it runs as root.
	if u := s["dk8s-csr-approver"].User; u != "0:0" {
		t.Errorf("the csr-approver runs as %q, want 0:0", u)
	}
	etcd := s["dk8s-etcd"]
	if m := etcd.Mounts[len(etcd.Mounts)-1]; m.Source != "/var/lib/dk8s/etcd" || m.Target != "/var/lib/etcd" || m.ReadOnly {
		t.Errorf("etcd's data should live in the host's /var/lib/dk8s/etcd, read-write: %+v", m)
	}
}

// Each component sees only the files its flags name, read-only: the
// cluster's secrets (the CA keys, the service-account key, the admin
// kubeconfigs) only where kubeadm puts them.
func TestPlanMountsOnlyOwnFiles(t *testing.T) {
	s := byName(testPlan(t, map[string]map[string]string{"kube-scheduler": {"config": "/etc/dk8s/scheduler-config.yaml"}}))
	mounted := func(name string) []string {
		var out []string
		for _, m := range s[name].Mounts {
			if m.Target == "/usr/local/bin/dk8s" && (name == "dk8s-csr-approver" || name == "dk8s-etcd-snapshotter") {
				continue // the approver and the snapshotter are dk8s itself
			}
			if m.Target == "/var/lib/dk8s-snapshots" {
				continue // where the snapshotter writes
			}
			if m.Target != "/var/lib/etcd" {
				out = append(out, strings.TrimPrefix(m.Source, "/var/lib/dk8s/"))
				if m.Target != "/etc/dk8s/"+strings.TrimPrefix(m.Source, "/var/lib/dk8s/") {
					t.Errorf("%s: %s mounted at %s", name, m.Source, m.Target)
				}
			}
		}
		slices.Sort(out)
		return out
	}
	want := map[string][]string{
		"dk8s-etcd":               {"pki/etcd/ca.crt", "pki/etcd/peer.crt", "pki/etcd/peer.key", "pki/etcd/server.crt", "pki/etcd/server.key"},
		"dk8s-scheduler":          {"scheduler-config.yaml", "scheduler.conf"},
		"dk8s-etcd-snapshotter":   {"pki/etcd/ca.crt", "pki/etcd/snapshotter.crt", "pki/etcd/snapshotter.key"},
		"dk8s-controller-manager": {"controller-manager.conf", "pki/ca.crt", "pki/ca.key", "pki/front-proxy-ca.crt", "pki/sa.key"},
	}
	for name, files := range want {
		if got := mounted(name); !slices.Equal(got, files) {
			t.Errorf("%s mounts %v, want %v", name, got, files)
		}
	}
	for _, secret := range []string{"pki/ca.key", "pki/etcd/ca.key", "pki/front-proxy-ca.key", "super-admin.conf", "admin.conf"} {
		for name := range s {
			if slices.Contains(mounted(name), secret) && name != "dk8s-controller-manager" {
				t.Errorf("%s can read %s", name, secret)
			}
		}
	}
}

func TestPlanIsStableAndExtraArgsTouchOneComponent(t *testing.T) {
	a, b := testPlan(t, nil), testPlan(t, nil)
	for i := range a {
		if a[i].Hash() != b[i].Hash() {
			t.Errorf("%s: the same input planned different hashes", a[i].Name)
		}
	}
	c := byName(testPlan(t, map[string]map[string]string{"kube-scheduler": {"v": "4"}}))
	for _, s := range a {
		changed := c[s.Name].Labels[containers.LabelSpecHash] != s.Labels[containers.LabelSpecHash]
		if changed != (s.Name == "dk8s-scheduler") {
			t.Errorf("%s: hash changed = %v after a scheduler-only flag", s.Name, changed)
		}
	}
	if !slices.Contains(c["dk8s-scheduler"].Args, "--v=4") {
		t.Error("the extra arg is missing")
	}
	over := byName(testPlan(t, map[string]map[string]string{"kube-apiserver": {"secure-port": "7443"}}))
	if n := strings.Count(strings.Join(over["dk8s-apiserver"].Args, " "), "--secure-port="); n != 1 || !slices.Contains(over["dk8s-apiserver"].Args, "--secure-port=7443") {
		t.Errorf("an extra arg should replace the default flag, got %v", over["dk8s-apiserver"].Args)
	}
}

func TestPlanRejectsUnknownComponent(t *testing.T) {
	lock, _ := images.ParseLock(dk8s.DefaultLock)
	rel, _ := lock.Release("")
	_, err := Plan(Config{ClusterName: "x", Dir: "/d", NodeName: "n", AdvertiseAddress: net.ParseIP("192.0.2.1"), ServiceCIDR: "10.96.0.0/12", PodCIDR: "10.244.0.0/16",
		ExtraArgs: map[string]map[string]string{"kube-apiservr": {"v": "2"}}}, rel)
	if err == nil || !strings.Contains(err.Error(), `unknown component "kube-apiservr"`) || !strings.Contains(err.Error(), "kube-apiserver") {
		t.Errorf("got %v", err)
	}
}
