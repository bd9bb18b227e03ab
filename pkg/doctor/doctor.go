package doctor

import (
	"context"
	"path/filepath"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/dk8s/dk8s/pkg/pki"
)

// Severity says whether a finding breaks the node (a problem: doctor
// fails) or will soon (a warning: shown, and doctor still passes).
type Severity string

// The severities of a finding.
const (
	Problem Severity = "problem"
	Warning Severity = "warning"
)

// Finding is one thing wrong with the node: the check that found it, what
// is wrong, and what to do (a command to run where there is one).
type Finding struct {
	Check    string   `json:"check"`
	Severity Severity `json:"severity"`
	Problem  string   `json:"problem"`
	Fix      string   `json:"fix"`
}

// Report is what Diagnose found, and which checks it ran or could not.
type Report struct {
	Findings []Finding `json:"findings"`
	// Checked are the checks that ran; Skipped says, for each that did
	// not, why (no node on this host, no admin kubeconfig, ...).
	Checked []string          `json:"checked"`
	Skipped map[string]string `json:"skipped,omitempty"`
}

// Healthy tells whether no finding is a problem.
func (r Report) Healthy() bool {
	for _, f := range r.Findings {
		if f.Severity == Problem {
			return false
		}
	}
	return true
}

// The checks' names, as findings and Report.Checked name them.
const (
	CheckSwap         = "swap"
	CheckIPForward    = "ip_forward"
	CheckBrNetfilter  = "br_netfilter"
	CheckDNS          = "dns"
	CheckSandbox      = "sandbox image"
	CheckCRI          = "cri"
	CheckCgroup       = "cgroup driver"
	CheckTaints       = "taints"
	CheckCerts        = "certificates"
	CheckClock        = "clock"
	CheckDisk         = "disk"
	CheckImagePulls   = "image pulls"
	CheckCoreDNSLoops = "coredns loop"
	CheckAPIServer    = "apiserver"
	CheckAgents       = "node agents"
)

// Facts are what Gather read from the host and the cluster. A nil part
// was not there to read (this host is no node, or no control plane); its
// checks are skipped, saying why.
type Facts struct {
	Now time.Time
	Dir string

	// Swaps is /proc/swaps; IPForward and BridgeNF the values of
	// net.ipv4.ip_forward and net.bridge.bridge-nf-call-iptables ("" when
	// unreadable: for the latter, br_netfilter is not loaded).
	Swaps, IPForward, BridgeNF string
	// Free is the free space where the cluster directory and the
	// runtime's store are.
	Free []DiskFree

	Node *NodeFacts
	// Certs are the PKI's certificates; nil with CertsSkip saying why
	// (this host keeps no cluster PKI), or with CertsErr when a certificate
	// it should keep cannot be read.
	Certs     []pki.Expiry
	CertsSkip string
	CertsErr  error
	Cluster   *ClusterFacts
	// ServerTime is the Date of an apiserver's answer, read at Now (zero
	// when it could not be read): a worker's too, through kubelet's
	// credentials.
	ServerTime time.Time
	// ClusterSkip says why Cluster is nil: there is no cluster to ask;
	// ClusterErr, that the apiserver did not answer.
	ClusterSkip string
	ClusterErr  error
}

// DiskFree is a file system's free space, as statfs counts it for
// unprivileged users.
type DiskFree struct {
	Path        string
	Free, Total uint64
	fsid        syscall.Fsid // to list a file system once
}

// NodeFacts are this host's node: its kubelet's and runtime's
// configuration as dk8s wrote them (or as someone changed them since),
// and what the runtime answers.
type NodeFacts struct {
	KubeletConfigPath string
	Kubelet           KubeletConfig
	RuntimeConfigPath string
	Runtime           RuntimeConfig
	// RuntimeConfigErr says why the runtime's configuration could not be
	// read; Runtime is then empty, and not judged.
	RuntimeConfigErr error
	// ResolvConf is the file kubelet hands pods (its resolvConf), and
	// ResolvConfData what it holds.
	ResolvConf, ResolvConfData string
	// Pause is the sandbox image of the release the node runs (the
	// lock's); SandboxPresent whether the runtime holds the configured one.
	Pause          string
	SandboxPresent bool
	// Plugins is 'ctr plugins ls' against the runtime's socket, or
	// PluginsErr why it did not answer.
	Plugins    string
	PluginsErr error
	// Mirrors are the registry hosts the runtime pulls pods' images
	// through (its hosts.toml files), per registry.
	Mirrors map[string][]string
	// AgentErrors are why the engine could not start the node's agents'
	// containers, by container.
	AgentErrors map[string]string
}

// ClusterFacts are what the apiserver says, read as the cluster's admin.
type ClusterFacts struct {
	Nodes []corev1.Node
	Pods  []corev1.Pod
	// CoreDNSLogs are the last logs of CoreDNS's restarting containers, by
	// pod name.
	CoreDNSLogs map[string]string
	// Leases are the nodes' heartbeats (kube-node-lease), each renewed by
	// its node's kubelet at its node's time.
	Leases []coordinationv1.Lease
}

// Diagnose runs every check whose facts are there.
func Diagnose(f Facts) Report {
	r := Report{Skipped: map[string]string{}}
	run := func(check string, found []Finding) {
		r.Checked = append(r.Checked, check)
		r.Findings = append(r.Findings, found...)
	}
	skip := func(why string, checks ...string) {
		for _, c := range checks {
			r.Skipped[c] = why
		}
	}
	run(CheckIPForward, checkIPForward(f.IPForward))
	run(CheckBrNetfilter, checkBridge(f.BridgeNF))
	if n := f.Node; n != nil {
		run(CheckAgents, checkAgents(n.AgentErrors))
		run(CheckSwap, checkSwap(f.Swaps, n.Kubelet))
		run(CheckDNS, checkResolvers(n.ResolvConf, n.ResolvConfData))
		if n.RuntimeConfigErr != nil {
			// An empty configuration would read as CRI off, no sandbox
			// image and the cgroupfs driver: three wrong findings.
			run(CheckCRI, []Finding{{CheckCRI, Problem, "the runtime's configuration cannot be read: " + firstLine(n.RuntimeConfigErr.Error()),
				n.Runtime.rewrite(n.RuntimeConfigPath)}})
			skip("the runtime's configuration cannot be read", CheckSandbox, CheckCgroup)
		} else {
			run(CheckCRI, checkCRI(n.RuntimeConfigPath, n.Runtime, n.Plugins, n.PluginsErr))
			run(CheckSandbox, checkSandbox(n.RuntimeConfigPath, n.Runtime, n.Pause, n.SandboxPresent, n.PluginsErr == nil))
			run(CheckCgroup, checkCgroup(n.KubeletConfigPath, n.Kubelet, n.RuntimeConfigPath, n.Runtime))
		}
	} else {
		skip("this host runs no node", CheckAgents, CheckSwap, CheckDNS, CheckCRI, CheckSandbox, CheckCgroup)
	}
	disk := checkFree(f.Free)
	switch {
	case f.CertsErr != nil:
		run(CheckCerts, []Finding{{CheckCerts, Problem, "a certificate of the cluster cannot be read: " + firstLine(f.CertsErr.Error()),
			"restore it from a backup of " + filepath.Join(f.Dir, "pki") + "; one that is not a CA can instead be deleted, and 'dk8s start' makes it again, signed by the cluster's CA"}})
	case f.Certs != nil:
		run(CheckCerts, checkCerts(f.Certs, f.Now))
	default:
		skip(f.CertsSkip, CheckCerts)
	}
	if c := f.Cluster; c != nil {
		run(CheckTaints, checkTaints(c.Nodes))
		disk = append(disk, checkDiskPressure(c.Nodes)...)
		var mirrors map[string][]string
		if f.Node != nil {
			mirrors = f.Node.Mirrors
		}
		run(CheckImagePulls, checkPulls(c.Pods, mirrors))
		run(CheckCoreDNSLoops, checkCoreDNSLoops(c.Pods, c.CoreDNSLogs))
	} else if apierrors.IsForbidden(f.ClusterErr) {
		// What a start that stopped at the apiserver's wait leaves: the
		// binding is made once the apiserver answers, by the start.
		run(CheckAPIServer, []Finding{{CheckAPIServer, Problem, "the apiserver answers, but the admin is not bound to cluster-admin yet (" + firstLine(f.ClusterErr.Error()) + "): dk8s start did not finish",
			"run the same 'dk8s start' again: it binds the admin and makes what is missing (the controller-manager, the scheduler, the node), changing nothing else"}})
		skip("the admin may not read the cluster", CheckTaints, CheckImagePulls, CheckCoreDNSLoops)
	} else if f.ClusterErr != nil {
		run(CheckAPIServer, []Finding{{CheckAPIServer, Problem, "the apiserver does not answer: " + firstLine(f.ClusterErr.Error()),
			"'dk8s ps' shows which component is down, 'dk8s logs kube-apiserver' (or etcd) why; 'dk8s start' brings back what stopped"}})
		skip("the apiserver does not answer", CheckTaints, CheckImagePulls, CheckCoreDNSLoops)
	} else {
		skip(f.ClusterSkip, CheckTaints, CheckImagePulls, CheckCoreDNSLoops)
	}
	switch {
	case f.Cluster != nil:
		run(CheckClock, append(checkClock(f.Now, f.ServerTime), checkHeartbeats(f.Now, f.Cluster.Leases)...))
	case !f.ServerTime.IsZero():
		run(CheckClock, checkClock(f.Now, f.ServerTime))
	default:
		skip("no apiserver answered", CheckClock)
	}
	run(CheckDisk, disk)
	if len(r.Skipped) == 0 {
		r.Skipped = nil
	}
	return r
}

// Run gathers the facts of o and diagnoses them.
func Run(ctx context.Context, o Options) Report {
	return Diagnose(Gather(ctx, o))
}
