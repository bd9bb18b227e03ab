package host

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strings"
)

// KubeletConfig renders the KubeletConfiguration of a kubelet serving on
// address: client certificates checked against the cluster CA at caFile,
// webhook authentication and authorization, no anonymous access, a serving
// certificate signed by the cluster CA (requested from the cluster, approved
// by dk8s's csr-approver) rather than a self-signed one, the
// runtime's cgroup driver, the cluster DNS at dns, and a resolv.conf that
// does not loop back into systemd-resolved.
func KubeletConfig(address net.IP, dns, caFile string, systemdCgroup, cgroupV1 bool, maxPods int) string {
	driver := "cgroupfs"
	if systemdCgroup {
		driver = "systemd"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `# Written by dk8s.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %s
authorization:
  mode: Webhook
cgroupDriver: %s
containerRuntimeEndpoint: unix://%s
clusterDNS: [%s]
clusterDomain: cluster.local
rotateCertificates: true
serverTLSBootstrap: true
resolvConf: %s
`, address, caFile, driver, RuntimeSocket, dns, resolvConf())
	if cgroupV1 {
		b.WriteString("failCgroupV1: false\n")
	}
	if maxPods > 0 {
		fmt.Fprintf(&b, "maxPods: %d\n", maxPods)
	}
	return b.String()
}

// resolvConf is the file whose nameservers pods use: where /etc/resolv.conf
// points at systemd-resolved's stub (127.0.0.53), which a pod cannot reach,
// CoreDNS would forward to itself; the real upstream list is used instead.
func resolvConf() string {
	data, _ := os.ReadFile("/etc/resolv.conf")
	if strings.Contains(string(data), "127.0.0.53") {
		if _, err := os.Stat("/run/systemd/resolve/resolv.conf"); err == nil {
			return "/run/systemd/resolve/resolv.conf"
		}
	}
	return "/etc/resolv.conf"
}

// CgroupV1 tells whether the host runs cgroup v1 (no unified hierarchy at
// /sys/fs/cgroup).
func CgroupV1() bool {
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return err != nil
}

// SystemdIsInit tells whether systemd is PID 1: then cgroups belong to it,
// kubelet and the runtime must use its driver, and it supervises them
// through units.
func SystemdIsInit() bool {
	comm, _ := os.ReadFile("/proc/1/comm")
	return strings.TrimSpace(string(comm)) == "systemd"
}

// LoopbackResolvers lists the nameservers of the resolv.conf pods get
// (resolvConf) that are loopback addresses: from a pod they are the pod
// itself, and CoreDNS, forwarding there, finds a loop and stops. Docker's
// embedded 127.0.0.11 and dnsmasq's 127.0.1.1 are the usual ones.
func LoopbackResolvers() []string {
	return loopbackResolvers(resolvConf())
}

func loopbackResolvers(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return LoopbackNameservers(string(data))
}

// LoopbackNameservers lists the nameservers of a resolv.conf's text that
// are loopback addresses.
func LoopbackNameservers(resolvConf string) []string {
	var out []string
	for _, line := range strings.Split(resolvConf, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if ip := net.ParseIP(f[1]); ip != nil && ip.IsLoopback() {
				out = append(out, f[1])
			}
		}
	}
	return out
}
