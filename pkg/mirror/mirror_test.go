package mirror

import (
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
		{"aliyun", "docker.io/library/busybox:1", "docker.io/library/busybox:1"},
	}
	for _, c := range cases {
		m, err := Parse(c.mirror)
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.mirror, err)
		}
		if got := m.Ref(c.canonical); got != c.want {
			t.Errorf("%s.Ref(%s) = %s, want %s", c.mirror, c.canonical, got, c.want)
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
