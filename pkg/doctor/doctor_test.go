package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/dk8s/dk8s/pkg/pki"
)

// dk8sRuntime is containerd's configuration as dk8s writes it (host.RuntimeConfig).
const dk8sRuntime = `# Written by dk8s: the containerd that runs this node's pods.
version = 2
root = "/var/lib/dk8s/containerd/root"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "127.0.0.1:5001/google_containers/pause:3.10"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
`

const pause = "127.0.0.1:5001/google_containers/pause:3.10"

const plugins = `TYPE                            ID       PLATFORMS      STATUS
io.containerd.grpc.v1           cri      linux/amd64    ok
`

// healthy are the facts of a healthy node on a control plane.
func healthy() Facts {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	return Facts{
		Now: now, Dir: "/var/lib/dk8s",
		Swaps: "Filename\tType\tSize\tUsed\tPriority\n", IPForward: "1\n", BridgeNF: "1\n",
		Free: []DiskFree{{Path: "/var/lib/dk8s", Free: 50 << 30, Total: 100 << 30}},
		Node: &NodeFacts{
			KubeletConfigPath: "/var/lib/dk8s/kubelet/config.yaml", Kubelet: KubeletConfig{CgroupDriver: "cgroupfs", ResolvConf: "/etc/resolv.conf"},
			RuntimeConfigPath: "/var/lib/dk8s/containerd/config.toml", Runtime: withRestart(ParseRuntimeConfig(dk8sRuntime)),
			ResolvConf: "/etc/resolv.conf", ResolvConfData: "nameserver 10.0.0.2\n",
			Pause: pause, SandboxPresent: true, Plugins: plugins,
			Mirrors: map[string][]string{"registry.k8s.io": {"http://172.29.0.1:5002/v2/google_containers"}},
		},
		Certs:      []pki.Expiry{{Name: "apiserver", NotAfter: now.Add(300 * 24 * time.Hour)}},
		ServerTime: now.Add(-time.Second),
		Cluster: &ClusterFacts{
			Nodes:  []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}},
			Leases: []coordinationv1.Lease{lease("n1", now.Add(-8*time.Second)), lease("gone", now.Add(-48*time.Hour))},
		},
	}
}

func withRestart(rc RuntimeConfig) RuntimeConfig {
	rc.Restart = "docker restart dk8s-containerd"
	return rc
}

func TestParseRuntimeConfig(t *testing.T) {
	rc := ParseRuntimeConfig(dk8sRuntime)
	if rc.SandboxImage != pause || rc.SystemdCgroup || len(rc.DisabledPlugins) != 0 {
		t.Errorf("dk8s's own configuration: %+v", rc)
	}
	rc = ParseRuntimeConfig("version = 3\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\", 'x']\n[plugins.'io.containerd.cri.v1.images'.pinned_images]\n  sandbox = \"registry.k8s.io/pause:3.10\"\n SystemdCgroup = true\n")
	if rc.SandboxImage != "registry.k8s.io/pause:3.10" || !rc.SystemdCgroup || rc.criDisabled() != "io.containerd.grpc.v1.cri" {
		t.Errorf("a version 3 configuration with CRI off: %+v", rc)
	}
}

func TestHealthyNodePasses(t *testing.T) {
	r := Diagnose(healthy())
	if !r.Healthy() || len(r.Findings) != 0 {
		t.Fatalf("a healthy node: %+v", r.Findings)
	}
	if len(r.Checked) < 13 || r.Skipped != nil {
		t.Errorf("every check should run on a control plane's node: ran %v, skipped %v", r.Checked, r.Skipped)
	}
}

// TestEachFailureIsNamed breaks one fact at a time and wants the check
// that judges it to name it as a problem, with its fix.
func TestEachFailureIsNamed(t *testing.T) {
	for _, c := range []struct {
		name, check, problem, fix string
		severity                  Severity
		breakIt                   func(f *Facts)
	}{
		{"ip_forward off", CheckIPForward, "forwarding is off", "sysctl -w net.ipv4.ip_forward=1", Problem, func(f *Facts) { f.IPForward = "0\n" }},
		{"br_netfilter not loaded", CheckBrNetfilter, "not loaded", "modprobe br_netfilter", Problem, func(f *Facts) { f.BridgeNF = "" }},
		{"bridge-nf-call-iptables 0", CheckBrNetfilter, "is 0", "sysctl -w net.bridge.bridge-nf-call-iptables=1", Problem, func(f *Facts) { f.BridgeNF = "0" }},
		{"swap on", CheckSwap, "/swapfile", "swapoff -a", Problem, func(f *Facts) { f.Swaps += "/swapfile file 1048572 0 -2\n" }},
		{"swap on, tolerated", CheckSwap, "failSwapOn: false", "none needed", Warning, func(f *Facts) {
			f.Swaps += "/dev/sda2 partition 1048572 0 -2\n"
			no := false
			f.Node.Kubelet.FailSwapOn = &no
		}},
		{"resolved's stub", CheckDNS, "names 127.0.0.53", "/run/systemd/resolve/resolv.conf", Problem, func(f *Facts) {
			f.Node.ResolvConfData = "nameserver 127.0.0.53\noptions edns0\n"
		}},
		{"dnsmasq's loopback", CheckDNS, "127.0.1.1", "restart kubelet", Problem, func(f *Facts) { f.Node.ResolvConfData = "nameserver 127.0.1.1\n" }},
		{"CRI disabled", CheckCRI, `disabled_plugins has "cri"`, "remove \"cri\"", Problem, func(f *Facts) { f.Node.Runtime.DisabledPlugins = []string{"cri"} }},
		{"runtime down", CheckCRI, "does not answer", "docker restart dk8s-containerd", Problem, func(f *Facts) {
			f.Node.PluginsErr = errors.New("exit status 1: connection refused")
		}},
		{"CRI failed to load", CheckCRI, "plugin is error", "dk8s logs containerd", Problem, func(f *Facts) {
			f.Node.Plugins = strings.Replace(plugins, " ok", " error", 1)
		}},
		{"sandbox differs", CheckSandbox, "registry.k8s.io/pause:3.6", "dk8s start", Problem, func(f *Facts) {
			f.Node.Runtime.SandboxImage = "registry.k8s.io/pause:3.6"
		}},
		{"sandbox absent", CheckSandbox, "does not hold", "dk8s pull", Problem, func(f *Facts) { f.Node.SandboxPresent = false }},
		{"cgroup drivers differ", CheckCgroup, "kubelet's cgroupDriver is cgroupfs", "restart kubelet", Problem, func(f *Facts) { f.Node.Runtime.SystemdCgroup = true }},
		{"control-plane taint", CheckTaints, "node-role.kubernetes.io/control-plane:NoSchedule", "kubectl taint nodes n1 node-role.kubernetes.io/control-plane:NoSchedule-", Problem, func(f *Facts) {
			f.Cluster.Nodes[0].Spec.Taints = []corev1.Taint{{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}}
		}},
		{"not-ready taint", CheckTaints, "node.kubernetes.io/not-ready:NoExecute", "once the node is Ready", Problem, func(f *Facts) {
			f.Cluster.Nodes[0].Spec.Taints = []corev1.Taint{{Key: "node.kubernetes.io/not-ready", Effect: corev1.TaintEffectNoExecute}}
		}},
		{"cordoned", CheckTaints, "cordoned", "kubectl uncordon n1", Problem, func(f *Facts) { f.Cluster.Nodes[0].Spec.Unschedulable = true }},
		{"expired certificate", CheckCerts, "apiserver (expired", "dk8s certs renew", Problem, func(f *Facts) { f.Certs[0].NotAfter = f.Now.Add(-time.Hour) }},
		{"certificate expiring soon", CheckCerts, "apiserver (in 9d)", "dk8s certs renew", Warning, func(f *Facts) { f.Certs[0].NotAfter = f.Now.Add(10*24*time.Hour - time.Hour) }},
		{"clock behind", CheckClock, "5m0s behind", "timedatectl set-ntp true", Problem, func(f *Facts) { f.ServerTime = f.Now.Add(5 * time.Minute) }},
		{"a node's clock ahead", CheckClock, "node w1's clock is 10m0s ahead", "timedatectl set-ntp true", Problem, func(f *Facts) {
			at := metav1.NewMicroTime(f.Now.Add(10 * time.Minute))
			f.Cluster.Leases = []coordinationv1.Lease{{ObjectMeta: metav1.ObjectMeta{Name: "w1"}, Spec: coordinationv1.LeaseSpec{RenewTime: &at}}}
		}},
		{"disk pressure", CheckDisk, "reports DiskPressure", "docker system prune", Problem, func(f *Facts) {
			f.Cluster.Nodes[0].Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeDiskPressure, Status: corev1.ConditionTrue, Message: "ephemeral-storage low"}}
		}},
		{"disk short", CheckDisk, "has 512 MiB free", "docker system prune", Problem, func(f *Facts) { f.Free[0].Free = 512 << 20 }},
		{"disk filling", CheckDisk, "(12%)", "free space", Warning, func(f *Facts) { f.Free[0].Free = 12 << 30 }},
		{"a tag the mirror lacks", CheckImagePulls, "registry.k8s.io/pause:nope (ErrImagePull; tried through http://172.29.0.1:5002/v2/google_containers): not found", "push it to one (e.g. http://172.29.0.1:5002", Problem, func(f *Facts) {
			f.Cluster.Pods = []corev1.Pod{pod("default", "app", "registry.k8s.io/pause:nope", corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: "not found"}})}
		}},
		{"a Docker Hub image with no mirror", CheckImagePulls, "no mirror is configured for docker.io", "dk8s start --mirror", Problem, func(f *Facts) {
			f.Cluster.Pods = []corev1.Pod{pod("default", "app", "nginx:1.99", corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}})}
		}},
		{"CoreDNS loop", CheckCoreDNSLoops, `Loop (127.0.0.1:55953 -> :53) detected for zone "."`, "kubectl -n kube-system delete pod -l k8s-app=kube-dns", Problem, func(f *Facts) {
			p := pod("kube-system", "coredns-1", "coredns", corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}})
			p.Labels = map[string]string{"k8s-app": "kube-dns"}
			f.Cluster.Pods = []corev1.Pod{p}
			f.Cluster.CoreDNSLogs = map[string]string{"coredns-1": "[INFO] plugin/reload: Running configuration\n[FATAL] plugin/loop: Loop (127.0.0.1:55953 -> :53) detected for zone \".\", see https://coredns.io/plugins/loop#troubleshooting\n"}
		}},
		{"an agent's container made by an earlier dk8s, after a reboot", CheckAgents, "dk8s-kubelet cannot start: Error response from daemon: path / is mounted on / but it is not a shared mount", "run 'dk8s start' (or 'dk8s join' on a worker) once", Problem, func(f *Facts) {
			f.Node.AgentErrors = map[string]string{"dk8s-kubelet": "Error response from daemon: path / is mounted on / but it is not a shared mount"}
		}},
		{"a start that stopped before binding the admin", CheckAPIServer, "the admin is not bound to cluster-admin yet", "run the same 'dk8s start' again", Problem, func(f *Facts) {
			f.Cluster, f.ClusterErr = nil, apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, "", errors.New(`User "kubernetes-admin" cannot list resource "nodes"`))
		}},
		{"apiserver down", CheckAPIServer, "connection refused", "dk8s ps", Problem, func(f *Facts) {
			f.Cluster, f.ClusterErr = nil, errors.New("dial tcp 10.0.0.1:6443: connection refused")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := healthy()
			c.breakIt(&f)
			r := Diagnose(f)
			if len(r.Findings) != 1 {
				t.Fatalf("want one finding, got %+v", r.Findings)
			}
			got := r.Findings[0]
			if got.Check != c.check || got.Severity != c.severity || !strings.Contains(got.Problem, c.problem) || !strings.Contains(got.Fix, c.fix) {
				t.Errorf("got %+v\nwant check %q, %s, problem saying %q, fix saying %q", got, c.check, c.severity, c.problem, c.fix)
			}
			if r.Healthy() != (c.severity == Warning) {
				t.Errorf("Healthy() = %t with a %s", r.Healthy(), c.severity)
			}
		})
	}
}

func TestOneNodeWithoutTaintsTakesPods(t *testing.T) {
	f := healthy()
	f.Cluster.Nodes = append(f.Cluster.Nodes, corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cp"},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}}}})
	if r := Diagnose(f); len(r.Findings) != 0 {
		t.Errorf("a tainted control plane beside a worker that takes pods: %+v", r.Findings)
	}
}

func TestSkippedChecksSayWhy(t *testing.T) {
	f := healthy()
	f.Node, f.Cluster, f.ClusterSkip, f.Certs, f.CertsSkip = nil, nil, "no admin kubeconfig", nil, "no PKI"
	r := Diagnose(f)
	if !r.Healthy() || r.Skipped[CheckSwap] != "this host runs no node" || r.Skipped[CheckTaints] != "no admin kubeconfig" || r.Skipped[CheckCerts] != "no PKI" {
		t.Errorf("a host with no node and no cluster to ask: %+v", r)
	}
	// A worker: no cluster to read as its admin, the apiserver's clock
	// read with kubelet's credentials.
	f.ServerTime = f.Now.Add(-2 * time.Minute)
	if r := Diagnose(f); r.Healthy() || len(r.Findings) != 1 || !strings.Contains(r.Findings[0].Problem, "2m0s ahead of the apiserver's") {
		t.Errorf("a worker's clock ahead of its apiserver's: %+v", r.Findings)
	}
}

// TestUnreadableCertificatesAreAProblem: a control plane whose PKI holds a
// certificate cut short, or lacks one, does not start its apiserver; that
// is no check to skip and call the node healthy.
func TestUnreadableCertificatesAreAProblem(t *testing.T) {
	missing := func() ([]pki.Expiry, error) {
		return nil, fmt.Errorf("reading apiserver: %w", fs.ErrNotExist)
	}
	for _, tc := range []struct {
		what         string
		expiries     func() ([]pki.Expiry, error)
		controlPlane bool
		healthy      bool
	}{
		{"a control plane lacking a certificate", missing, true, false},
		{"a worker, which keeps no cluster PKI", missing, false, true},
		{"a certificate that is not PEM", func() ([]pki.Expiry, error) {
			return nil, errors.New("/var/lib/dk8s/pki/ca.crt is not a PEM certificate")
		}, false, false},
	} {
		f := Gather(context.Background(), Options{Dir: t.TempDir(), Expiries: tc.expiries, ControlPlane: tc.controlPlane})
		f.IPForward, f.BridgeNF, f.Free = "1", "1", nil
		r := Diagnose(f)
		if r.Healthy() != tc.healthy {
			t.Errorf("%s: healthy = %v, want %v: %+v", tc.what, r.Healthy(), tc.healthy, r)
		}
		if !tc.healthy && (len(r.Findings) != 1 || r.Findings[0].Check != CheckCerts || !strings.Contains(r.Findings[0].Fix, "'dk8s start' makes it again")) {
			t.Errorf("%s: want one certificates finding with its fix: %+v", tc.what, r.Findings)
		}
	}
}

// TestMissingRuntimeConfig: a node whose containerd configuration is gone
// gets one finding saying so, not an empty configuration judged as CRI
// off, no sandbox image and the wrong cgroup driver.
func TestMissingRuntimeConfig(t *testing.T) {
	f := healthy()
	f.Node.Kubelet.CgroupDriver = "systemd"
	f.Node.Runtime = withRestart(RuntimeConfig{})
	f.Node.RuntimeConfigErr = fmt.Errorf("open %s: %w", f.Node.RuntimeConfigPath, fs.ErrNotExist)
	r := Diagnose(f)
	if len(r.Findings) != 1 || r.Findings[0].Check != CheckCRI || !strings.Contains(r.Findings[0].Problem, "cannot be read") ||
		!strings.Contains(r.Findings[0].Fix, "dk8s start") {
		t.Errorf("want one finding that the runtime's configuration is missing, with its fix: %+v", r.Findings)
	}
	if r.Skipped[CheckSandbox] == "" || r.Skipped[CheckCgroup] == "" {
		t.Errorf("the checks of the configuration's content should be skipped, saying why: %+v", r.Skipped)
	}
}

func pod(ns, name, image string, st corev1.ContainerState) corev1.Pod {
	return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "c", Image: image, State: st}}}}
}

func lease(node string, renewed time.Time) coordinationv1.Lease {
	at := metav1.NewMicroTime(renewed)
	return coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: node}, Spec: coordinationv1.LeaseSpec{RenewTime: &at}}
}

// A control plane whose admin client cannot be made (admin.conf deleted or
// unreadable) is not healthy by default: it is a finding, as an apiserver
// that does not answer is.
func TestControlPlaneWithoutAdminClientIsAProblem(t *testing.T) {
	f := Gather(context.Background(), Options{Dir: t.TempDir(), ControlPlane: true, KubeErr: errors.New("reading admin.conf: no such file or directory")})
	r := Diagnose(f)
	if r.Healthy() || !slices.ContainsFunc(r.Findings, func(x Finding) bool {
		return x.Check == CheckAPIServer && x.Severity == Problem && strings.Contains(x.Problem, "admin.conf")
	}) {
		t.Errorf("findings %+v", r.Findings)
	}
}
