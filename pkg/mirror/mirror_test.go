package mirror

import (
	"errors"
	"strings"
	"testing"
)

func TestRef(t *testing.T) {
	cases := []struct {
		mirror, canonical, want string
	}{
		{"aliyun", "registry.k8s.io/coredns/coredns:v1.14.6", "registry.aliyuncs.com/google_containers/coredns:v1.14.6"},
		{"aliyun", "registry.k8s.io/kube-apiserver:v1.37.2", "registry.aliyuncs.com/google_containers/kube-apiserver:v1.37.2"},
		{"aliyun-hangzhou", "registry.k8s.io/pause:3.10.2", "registry.cn-hangzhou.aliyuncs.com/google_containers/pause:3.10.2"},
		{"daocloud", "registry.k8s.io/coredns/coredns:v1.14.6", "k8s.m.daocloud.io/coredns/coredns:v1.14.6"},
		{"upstream", "registry.k8s.io/etcd:3.7.0-0", "registry.k8s.io/etcd:3.7.0-0"},
		{"harbor.local:8443/k8s", "registry.k8s.io/coredns/coredns:v1.14.6", "harbor.local:8443/k8s/coredns:v1.14.6"},
		{"harbor.local:8443/k8s/...", "registry.k8s.io/coredns/coredns:v1.14.6", "harbor.local:8443/k8s/coredns/coredns:v1.14.6"},
		{"cache.local:5000", "registry.k8s.io/coredns/coredns:v1.14.6", "cache.local:5000/coredns/coredns:v1.14.6"},
		// docker.io's images: DaoCloud keeps them on a host of their own;
		// a mirror given by address serves them beside registry.k8s.io's.
		{"daocloud", "docker.io/flannel/flannel:v0.28.10", "docker.m.daocloud.io/flannel/flannel:v0.28.10"},
		{"upstream", "docker.io/flannel/flannel:v0.28.10", "docker.io/flannel/flannel:v0.28.10"},
		{"127.0.0.1:5001/google_containers", "docker.io/flannel/flannel:v0.28.10", "127.0.0.1:5001/google_containers/flannel:v0.28.10"},
		{"127.0.0.1:5002/...", "docker.io/flannel/flannel:v0.28.10", "127.0.0.1:5002/flannel/flannel:v0.28.10"},
		{"harbor.local/hub/...", "docker.io/library/busybox:1", "harbor.local/hub/library/busybox:1"},
	}
	for _, c := range cases {
		m, err := Parse(c.mirror)
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.mirror, err)
		}
		if got, err := m.Ref(c.canonical); got != c.want || err != nil {
			t.Errorf("%s.Ref(%s) = %s, %v; want %s", c.mirror, c.canonical, got, err, c.want)
		}
	}
}

// A mirror not known to serve an image's registry never hands back the
// upstream name (behind the firewall, a pull from docker.io hangs): it says
// which mirrors do.
func TestRefNotServed(t *testing.T) {
	cases := []struct {
		mirror, canonical, want string
	}{
		{"aliyun", "docker.io/flannel/flannel:v0.28.10", "not known to serve docker.io images (daocloud, upstream and mirrors given by address do)"},
		{"aliyun-hangzhou", "docker.io/library/busybox:1", "not known to serve docker.io images"},
		{"daocloud", "quay.io/coreos/etcd:v3.5.0", "not known to serve quay.io images: dk8s knows mirrors of registry.k8s.io and docker.io only"},
		{"127.0.0.1:5001/google_containers", "ghcr.io/x/y:1", "not known to serve ghcr.io images"},
	}
	for _, c := range cases {
		m, _ := Parse(c.mirror)
		got, err := m.Ref(c.canonical)
		if got != "" || !errors.Is(err, ErrNotServed) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s.Ref(%s) = %q, %v; want no name and %q", c.mirror, c.canonical, got, err, c.want)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, word := range []string{"alyun", "", "daocloud io", "http://registry.local/x", "Registry.Local/UPPER"} {
		_, err := Parse(word)
		if err == nil {
			t.Errorf("Parse(%q) should fail", word)
			continue
		}
		if !strings.Contains(err.Error(), "aliyun, aliyun-hangzhou, daocloud, upstream") {
			t.Errorf("Parse(%q) error should list the known mirrors: %v", word, err)
		}
	}
}

func TestParseList(t *testing.T) {
	ms, err := ParseList("aliyun, daocloud,127.0.0.1:5001/google_containers")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range ms {
		names = append(names, m.Name+"="+m.Layout.String())
	}
	want := "aliyun=flat daocloud=path-preserving 127.0.0.1:5001/google_containers=flat"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if _, err := ParseList(" , "); err == nil {
		t.Error("an empty list should fail")
	}
}

func TestScheme(t *testing.T) {
	for host, want := range map[string]string{
		"127.0.0.1:5001": "http", "localhost:5000": "http", "[::1]:5000": "http",
		"registry.k8s.io": "https", "10.0.0.1:5000": "https",
	} {
		if got := scheme(host); got != want {
			t.Errorf("scheme(%s) = %s, want %s", host, got, want)
		}
	}
}
