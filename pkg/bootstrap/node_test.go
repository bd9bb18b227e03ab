package bootstrap

import (
	"net"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/mirror"
)

func TestKubeletConfig(t *testing.T) {
	cfg := Config{AdvertiseAddress: net.ParseIP("192.0.2.10")}
	v1 := kubeletConfig(cfg, "10.96.0.10", "/var/lib/dk8s/pki/ca.crt", false, true)
	for _, want := range []string{
		"anonymous:\n    enabled: false", "webhook:\n    enabled: true", "clientCAFile: /var/lib/dk8s/pki/ca.crt",
		"mode: Webhook", "cgroupDriver: cgroupfs", "rotateCertificates: true", "readOnlyPort: 0",
		"healthzBindAddress: 127.0.0.1", "address: 192.0.2.10", "clusterDNS: [10.96.0.10]",
		"containerRuntimeEndpoint: unix:///run/dk8s/containerd/containerd.sock", "failCgroupV1: false",
	} {
		if !strings.Contains(v1, want) {
			t.Errorf("kubelet config lacks %q:\n%s", want, v1)
		}
	}
	v2 := kubeletConfig(cfg, "10.96.0.10", "/ca.crt", true, false)
	if strings.Contains(v2, "failCgroupV1") || !strings.Contains(v2, "cgroupDriver: systemd") {
		t.Errorf("on cgroup v2 under systemd: no failCgroupV1, the systemd driver:\n%s", v2)
	}
}

func TestHostsToml(t *testing.T) {
	flat, _ := mirror.Parse("registry.aliyuncs.com/google_containers")
	path, _ := mirror.Parse("127.0.0.1:5002/...")
	up, _ := mirror.Parse("upstream")
	got := hostsToml([]mirror.Mirror{flat, path, up})
	for _, want := range []string{
		`server = "https://registry.k8s.io"`,
		`[host."https://registry.aliyuncs.com/v2/google_containers"]`, "override_path = true",
		`[host."http://127.0.0.1:5002"]`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("hosts.toml lacks %q:\n%s", want, got)
		}
	}
	if strings.Index(got, "aliyuncs") > strings.Index(got, "5002") {
		t.Error("mirrors must keep their order")
	}
}

func TestNodePodSubnet(t *testing.T) {
	if s, err := nodePodSubnet("10.244.0.0/16"); err != nil || s != "10.244.0.0/24" {
		t.Errorf("got %s, %v", s, err)
	}
	for _, bad := range []string{"10.244.0.0/25", "fd00::/64", "nope"} {
		if _, err := nodePodSubnet(bad); err == nil {
			t.Errorf("%s should be refused", bad)
		}
	}
	if !strings.Contains(cniConfig("10.244.0.0/24"), `"type": "firewall"`) {
		t.Error("the CNI config needs the firewall plugin: Docker's FORWARD policy is DROP")
	}
}
