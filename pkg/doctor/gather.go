package doctor

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/dk8s/dk8s/pkg/host"
	"github.com/dk8s/dk8s/pkg/pki"
)

// Options are where Gather reads from.
type Options struct {
	// Dir is the cluster directory.
	Dir string
	// Pause is the sandbox image of the release the node runs ("" when
	// not known: the sandbox image is then not compared).
	Pause string
	// Expiries reads the PKI's certificates (bootstrap.CertExpiries).
	Expiries func() ([]pki.Expiry, error)
	// ControlPlane says this host is a control plane, which keeps the
	// whole PKI: a certificate missing there is a problem, not a host
	// without one.
	ControlPlane bool
	// Runner runs ctr against the runtime; Ctr is ctr's path.
	Runner host.Runner
	Ctr    string
	// Kubeconfig is the credentials the apiserver's clock is read with:
	// the admin's, or a worker's kubelet's ("" not to read it).
	Kubeconfig string
	// Kube is the cluster as its admin, nil where there is none to read
	// (a worker, a stopped control plane); KubeSkip says why.
	Kube     kubernetes.Interface
	KubeSkip string
	// KubeErr is why no client could be made on a control plane (its
	// admin.conf gone or unreadable): a problem, not a reason to skip.
	KubeErr error
	// AgentErrors reads, by container, why the engine could not start the
	// node's agents' supervising containers (nil under systemd).
	AgentErrors func(ctx context.Context) map[string]string
}

// Gather reads the facts Diagnose judges. What cannot be read is left out
// and its checks are skipped; an apiserver that does not answer is a
// fact too (ClusterErr).
func Gather(ctx context.Context, o Options) Facts {
	f := Facts{Now: time.Now(), Dir: o.Dir}
	f.Swaps = readString("/proc/swaps")
	f.IPForward = readString("/proc/sys/net/ipv4/ip_forward")
	f.BridgeNF = readString("/proc/sys/net/bridge/bridge-nf-call-iptables")
	f.Node = gatherNode(ctx, o)
	for _, p := range []string{o.Dir, filepath.Join(o.Dir, "containerd", "root")} {
		if d, err := statFree(p); err == nil && !slices.ContainsFunc(f.Free, func(o DiskFree) bool { return o.fsid == d.fsid }) {
			f.Free = append(f.Free, d)
		}
	}
	if o.Expiries != nil {
		exp, err := o.Expiries()
		switch {
		case errors.Is(err, os.ErrNotExist) && !o.ControlPlane:
			f.CertsSkip = "no PKI in " + filepath.Join(o.Dir, "pki")
		case err != nil:
			// A file cut short by a full disk, or deleted: the
			// apiserver will not start on it.
			f.CertsErr = err
		default:
			f.Certs = exp
		}
	}
	if o.Kubeconfig != "" {
		f.ServerTime, _ = serverTime(ctx, o.Kubeconfig) // zero, and not judged, when unread
	}
	if o.Kube == nil {
		f.ClusterSkip, f.ClusterErr = o.KubeSkip, o.KubeErr
		return f
	}
	f.Cluster, f.ClusterErr = gatherCluster(ctx, o)
	return f
}

// gatherNode reads the node's configuration, or returns nil when this
// host runs no node (no kubelet configuration in the directory).
func gatherNode(ctx context.Context, o Options) *NodeFacts {
	n := &NodeFacts{
		KubeletConfigPath: filepath.Join(o.Dir, "kubelet", "config.yaml"),
		RuntimeConfigPath: filepath.Join(o.Dir, "containerd", "config.toml"),
		Pause:             o.Pause,
	}
	data, err := os.ReadFile(n.KubeletConfigPath)
	if err != nil {
		return nil
	}
	n.Kubelet, _ = ParseKubeletConfig(data)
	if runtimeConf, err := os.ReadFile(n.RuntimeConfigPath); err != nil {
		n.RuntimeConfigErr = err
	} else {
		n.Runtime = ParseRuntimeConfig(string(runtimeConf))
	}
	n.Runtime.Restart = "docker restart dk8s-containerd"
	if host.SystemdIsInit() {
		n.Runtime.Restart = "systemctl restart " + host.UnitName("containerd")
	}
	n.ResolvConf = n.Kubelet.ResolvConf
	if n.ResolvConf == "" {
		n.ResolvConf = "/etc/resolv.conf" // kubelet's default
	}
	n.ResolvConfData = readString(n.ResolvConf)
	ctrArgs := []string{"--address", host.RuntimeSocket, "--connect-timeout", "3s"}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := o.Runner.Run(rctx, nil, o.Ctr, append(ctrArgs, "plugins", "ls")...)
	n.Plugins, n.PluginsErr = string(out), err
	if err == nil && n.Runtime.SandboxImage != "" {
		out, err := o.Runner.Run(rctx, nil, o.Ctr, append(ctrArgs, "-n", "k8s.io", "images", "ls", "-q", "name=="+n.Runtime.SandboxImage)...)
		n.SandboxPresent = err == nil && strings.TrimSpace(string(out)) != ""
	}
	n.Mirrors = readMirrors(filepath.Join(o.Dir, "containerd", "certs.d"))
	if o.AgentErrors != nil {
		n.AgentErrors = o.AgentErrors(ctx)
	}
	return n
}

// readMirrors lists, per registry, the hosts of its hosts.toml.
func readMirrors(dir string) map[string][]string {
	out := map[string][]string{}
	files, _ := filepath.Glob(filepath.Join(dir, "*", "hosts.toml"))
	for _, file := range files {
		registry := filepath.Base(filepath.Dir(file))
		fh, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			l := strings.TrimSpace(sc.Text())
			if strings.HasPrefix(l, "[host.") {
				u := strings.Trim(strings.TrimSuffix(strings.TrimPrefix(l, "[host."), "]"), `"`)
				out[registry] = append(out[registry], u)
			}
		}
		fh.Close()
	}
	return out
}

func gatherCluster(ctx context.Context, o Options) (*ClusterFacts, error) {
	c := &ClusterFacts{CoreDNSLogs: map[string]string{}}
	nodes, err := o.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	c.Nodes = nodes.Items
	pods, err := o.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	c.Pods = pods.Items
	for _, p := range c.Pods {
		if p.Namespace == "kube-system" && p.Labels["k8s-app"] == "kube-dns" && restarting(p) {
			c.CoreDNSLogs[p.Name] = podLogs(ctx, o.Kube, p)
		}
	}
	leases, err := o.Kube.CoordinationV1().Leases("kube-node-lease").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	c.Leases = leases.Items
	return c, nil
}

// restarting tells whether a container of p has stopped at least once.
func restarting(p corev1.Pod) bool {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.RestartCount > 0 || (cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff") {
			return true
		}
	}
	return false
}

// podLogs is the last lines of p's previous container (the one that
// stopped), or of its current one.
func podLogs(ctx context.Context, cs kubernetes.Interface, p corev1.Pod) string {
	tail := int64(20)
	for _, previous := range []bool{true, false} {
		rc, err := cs.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Previous: previous, TailLines: &tail}).Stream(ctx)
		if err != nil {
			continue
		}
		data, _ := io.ReadAll(io.LimitReader(rc, 64<<10))
		rc.Close()
		if len(data) > 0 {
			return string(data)
		}
	}
	return ""
}

// serverTime reads the apiserver's clock from the Date of its answer to
// GET /livez, as the admin of kubeconfig.
func serverTime(ctx context.Context, kubeconfig string) (time.Time, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return time.Time{}, err
	}
	client, err := rest.HTTPClientFor(rc)
	if err != nil {
		return time.Time{}, err
	}
	client.Timeout = 10 * time.Second
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(rc.Host, "/")+"/livez", nil)
	if err != nil {
		return time.Time{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return time.Time{}, err
	}
	resp.Body.Close()
	return http.ParseTime(resp.Header.Get("Date"))
}

func readString(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

func statFree(path string) (DiskFree, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return DiskFree{}, err
	}
	return DiskFree{Path: path, Free: st.Bavail * uint64(st.Bsize), Total: st.Blocks * uint64(st.Bsize), fsid: st.Fsid}, nil
}
