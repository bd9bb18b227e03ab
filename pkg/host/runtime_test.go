package host

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/mirror"
)

func TestKubeletConfig(t *testing.T) {
	v1 := KubeletConfig(net.ParseIP("192.0.2.10"), "10.96.0.10", "/var/lib/dk8s/pki/ca.crt", false, true, 0)
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
	v2 := KubeletConfig(net.ParseIP("192.0.2.10"), "10.96.0.10", "/ca.crt", true, false, 50)
	if strings.Contains(v2, "failCgroupV1") || !strings.Contains(v2, "cgroupDriver: systemd") {
		t.Errorf("on cgroup v2 under systemd: no failCgroupV1, the systemd driver:\n%s", v2)
	}
	if !strings.Contains(v2, "resolvConf: /") {
		t.Errorf("the kubelet config should name a resolv.conf:\n%s", v2)
	}
	if !strings.Contains(v2, "maxPods: 50") || strings.Contains(v1, "maxPods") {
		t.Errorf("maxPods only when asked:\n%s\n%s", v1, v2)
	}
	if !strings.Contains(v1, "serverTLSBootstrap: true") {
		t.Errorf("kubelet should ask the cluster for its serving certificate:\n%s", v1)
	}
}

func TestRuntimeConfig(t *testing.T) {
	got := RuntimeConfig("/var/lib/dk8s", "registry.k8s.io/pause:3.10", "/usr/lib/cni", true, false)
	for _, want := range []string{
		`root = "/var/lib/dk8s/containerd/root"`, `state = "/run/dk8s/containerd"`,
		`address = "/run/dk8s/containerd/containerd.sock"`, `sandbox_image = "registry.k8s.io/pause:3.10"`,
		"restrict_oom_score_adj = false", "SystemdCgroup = true", `bin_dir = "/usr/lib/cni"`,
		`conf_dir = "/var/lib/dk8s/cni"`, `config_path = "/var/lib/dk8s/containerd/certs.d"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("containerd config lacks %q:\n%s", want, got)
		}
	}
	if got := RuntimeConfig("/d", "p", "/c", false, true); !strings.Contains(got, "SystemdCgroup = false") || !strings.Contains(got, "restrict_oom_score_adj = true") {
		t.Errorf("cgroupfs and a restricted OOM score should show:\n%s", got)
	}
}

func TestHostsToml(t *testing.T) {
	flat, _ := mirror.Parse("registry.aliyuncs.com/google_containers")
	path, _ := mirror.Parse("127.0.0.1:5002/...")
	up, _ := mirror.Parse("upstream")
	got := HostsToml(mirror.Upstream, []mirror.Mirror{flat, path, up}, nil)
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
	if strings.Count(got, "[host.") != 2 {
		t.Errorf("upstream is the server itself, not a host:\n%s", got)
	}
}

// Pods' docker.io images (flannel's) go through the mirrors that serve
// docker.io in a layout containerd can follow: it keeps the whole path
// (flannel/flannel), which a flat mirror does not.
func TestHostsTomlDockerHub(t *testing.T) {
	var ms []mirror.Mirror
	for _, word := range []string{"aliyun", "127.0.0.1:5001/google_containers", "daocloud", "127.0.0.1:5002/...", "harbor.local/hub/...", "upstream"} {
		m, err := mirror.Parse(word)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	got := HostsToml(mirror.DockerHub, ms, nil)
	want := `# Written by dk8s: pods' docker.io images through the mirrors.
server = "https://registry-1.docker.io"

[host."https://docker.m.daocloud.io"]
  capabilities = ["pull", "resolve"]

[host."http://127.0.0.1:5002"]
  capabilities = ["pull", "resolve"]

[host."https://harbor.local/v2/hub"]
  capabilities = ["pull", "resolve"]
  override_path = true
`
	if got != want {
		t.Errorf("hosts.toml for docker.io:\n%s\nwant:\n%s", got, want)
	}
}

func TestNodePodSubnet(t *testing.T) {
	if s, err := NodePodSubnet("10.244.0.0/16"); err != nil || s != "10.244.0.0/24" {
		t.Errorf("got %s, %v", s, err)
	}
	for _, bad := range []string{"10.244.0.0/25", "fd00::/64", "nope"} {
		if _, err := NodePodSubnet(bad); err == nil {
			t.Errorf("%s should be refused", bad)
		}
	}
}

func TestFlannelSubnetAndCNIConfig(t *testing.T) {
	env := filepath.Join(t.TempDir(), "subnet.env")
	if _, err := ReadFlannelSubnet(env); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("before flanneld writes it: %v, want not-exist", err)
	}
	os.WriteFile(env, []byte("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1350\nFLANNEL_IPMASQ=true\n"), 0o644)
	n, err := ReadFlannelSubnet(env)
	if err != nil || n != (FlannelNetwork{Network: "10.244.0.0/16", Subnet: "10.244.1.0/24", MTU: 1350, IPMasq: true}) {
		t.Fatalf("got %+v, %v", n, err)
	}
	cni := CNIConfig(n)
	if !strings.Contains(cni, `"type": "firewall"`) {
		t.Error("the CNI config needs the firewall plugin: Docker's FORWARD policy is DROP")
	}
	if !strings.Contains(cni, `"subnet": "10.244.1.0/24"`) || !strings.Contains(cni, `"name": "dk8s"`) || !strings.Contains(cni, `"mtu": 1350`) {
		t.Errorf("the CNI network is dk8s's, on the node's flannel subnet and MTU:\n%s", cni)
	}
	if !strings.Contains(cni, `"ipMasq": false`) {
		t.Errorf("flanneld masquerades, so the bridge must not (pod-to-pod traffic across nodes keeps its source):\n%s", cni)
	}
	os.WriteFile(env, []byte("FLANNEL_NETWORK=10.244.0.0/16\n"), 0o644)
	if _, err := ReadFlannelSubnet(env); err == nil {
		t.Error("a subnet.env without a subnet must be an error")
	}
}

// A mirror Docker was told is insecure is reached over plain HTTP by the
// node's containerd too; any other over HTTPS.
func TestPlainHTTP(t *testing.T) {
	insecure := []string{"127.0.0.0/8", "172.29.0.1:5002", "10.9.0.0/16"}
	for host, want := range map[string]bool{
		"127.0.0.1:5001": true, "localhost:5000": true, "172.29.0.1:5002": true, "172.29.0.1:5001": false,
		"10.9.3.4:443": true, "registry.aliyuncs.com": false, "k8s.m.daocloud.io": false,
	} {
		if got := PlainHTTP(host, insecure); got != want {
			t.Errorf("%s: plain HTTP %v, want %v", host, got, want)
		}
	}
	got := HostsToml(mirror.Upstream, []mirror.Mirror{{Name: "m", Prefix: "172.29.0.1:5002", Layout: mirror.PathPreserving}}, insecure)
	if !strings.Contains(got, `"http://172.29.0.1:5002"`) {
		t.Errorf("an insecure mirror should be reached over http:\n%s", got)
	}
}
