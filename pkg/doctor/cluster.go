package doctor

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/dk8s/dk8s/pkg/pki"
)

// checkTaints: a taint that repels pods on every node that takes pods
// leaves new pods Pending (the control-plane taint on a single node is the
// usual one).
func checkTaints(nodes []corev1.Node) []Finding {
	var schedulable []corev1.Node
	for _, n := range nodes {
		if !n.Spec.Unschedulable {
			schedulable = append(schedulable, n)
		}
	}
	if len(nodes) > 0 && len(schedulable) == 0 {
		return []Finding{{CheckTaints, Problem, "every node is cordoned: no pod can be scheduled", "kubectl uncordon " + nodes[0].Name}}
	}
	var out []Finding
	for _, n := range schedulable {
		var blocking []corev1.Taint
		for _, t := range n.Spec.Taints {
			if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
				blocking = append(blocking, t)
			}
		}
		if len(blocking) == 0 {
			return nil // one node takes pods
		}
		for _, t := range blocking {
			out = append(out, Finding{CheckTaints, Problem, fmt.Sprintf("node %s has the taint %s: pods without a toleration cannot run on it, and no other node takes them", n.Name, taintString(t)), taintFix(n.Name, t)})
		}
	}
	return out
}

func taintString(t corev1.Taint) string {
	s := t.Key
	if t.Value != "" {
		s += "=" + t.Value
	}
	return s + ":" + string(t.Effect)
}

// taintFix removes a taint by hand, except those the node's controller
// keeps while a condition holds: their fix is the condition's.
func taintFix(node string, t corev1.Taint) string {
	switch t.Key {
	case "node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable":
		return "it goes once the node is Ready again: 'kubectl describe node " + node + "' and 'dk8s ps' say why it is not"
	case "node.kubernetes.io/disk-pressure", "node.kubernetes.io/memory-pressure", "node.kubernetes.io/pid-pressure":
		return "it goes with the pressure: see the disk finding, or 'kubectl describe node " + node + "'"
	}
	return fmt.Sprintf("kubectl taint nodes %s %s:%s-", node, t.Key, t.Effect)
}

// checkDiskPressure: kubelet says the node's disk is short, and evicts.
func checkDiskPressure(nodes []corev1.Node) []Finding {
	var out []Finding
	for _, n := range nodes {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeDiskPressure && c.Status == corev1.ConditionTrue {
				out = append(out, Finding{CheckDisk, Problem, fmt.Sprintf("node %s reports DiskPressure (%s): kubelet evicts pods and takes no new ones", n.Name, strings.TrimSpace(c.Message)),
					"free space on the node's disk ('docker system prune', 'dk8s etcd defrag', remove unused images: 'ctr -n k8s.io --address /run/dk8s/containerd/containerd.sock images prune --all')"})
			}
		}
	}
	return out
}

// maxSkew is the clock difference past which tokens, certificates and
// leases start to misbehave.
const maxSkew = 30 * time.Second

// checkClock compares this host's clock with the apiserver's (the Date of
// its answer, whose resolution is a second).
func checkClock(now, server time.Time) []Finding {
	if server.IsZero() {
		return nil
	}
	skew := now.Sub(server)
	if skew < 0 {
		skew = -skew
	}
	if skew <= maxSkew {
		return nil
	}
	dir := "ahead of"
	if now.Before(server) {
		dir = "behind"
	}
	return []Finding{{CheckClock, Problem, fmt.Sprintf("this host's clock is %s %s the apiserver's: certificates, tokens and node leases are judged wrong", skew.Round(time.Second), dir),
		"run time synchronisation on every machine (systemd-timesyncd or chrony: 'timedatectl set-ntp true')"}}
}

// checkHeartbeats finds nodes whose clocks run ahead of this host's: a
// lease renewed "in the future" can only be a clock's doing (one renewed
// long ago is as well a node that stopped, and is not judged).
func checkHeartbeats(now time.Time, leases []coordinationv1.Lease) []Finding {
	var out []Finding
	for _, l := range leases {
		if l.Spec.RenewTime == nil {
			continue
		}
		if ahead := l.Spec.RenewTime.Sub(now); ahead > maxSkew {
			out = append(out, Finding{CheckClock, Problem, fmt.Sprintf("node %s's clock is %s ahead of this host's (its kubelet renewed its lease at %s, in this host's future): leases and certificates are judged wrong",
				l.Name, ahead.Round(time.Second), l.Spec.RenewTime.UTC().Format(time.RFC3339)), "run time synchronisation on every machine (systemd-timesyncd or chrony: 'timedatectl set-ntp true')"})
		}
	}
	return out
}

// checkPulls names each image that pods cannot pull, with the mirrors the
// runtime tried: behind the firewall, a mirror lacking a tag is the
// usual cause.
func checkPulls(pods []corev1.Pod, mirrors map[string][]string) []Finding {
	seen := map[string]bool{}
	var out []Finding
	for _, p := range pods {
		for _, cs := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
			w := cs.State.Waiting
			if w == nil || (w.Reason != "ErrImagePull" && w.Reason != "ImagePullBackOff") || seen[cs.Image] {
				continue
			}
			seen[cs.Image] = true
			registry := registryOf(cs.Image)
			via := "no mirror is configured for " + registry
			fix := "make the image reachable: 'dk8s start --mirror MIRROR' with a mirror that has it, or push it to a registry this node reaches"
			if ms := mirrors[registry]; len(ms) > 0 {
				via = "tried through " + strings.Join(ms, ", ")
				fix = fmt.Sprintf("the mirrors lack %s: push it to one (e.g. %s), or add a mirror that has it ('dk8s start --mirror ...'), or fix the tag", cs.Image, ms[0])
			}
			out = append(out, Finding{CheckImagePulls, Problem, fmt.Sprintf("pod %s/%s cannot pull %s (%s; %s): %s", p.Namespace, p.Name, cs.Image, w.Reason, via, firstLine(strings.TrimSpace(w.Message))), fix})
		}
	}
	return out
}

// registryOf is the registry of an image reference, as containerd
// resolves it (docker.io for a bare name).
func registryOf(ref string) string {
	first, _, ok := strings.Cut(ref, "/")
	if !ok || (!strings.ContainsAny(first, ".:") && first != "localhost") {
		return "docker.io"
	}
	return first
}

// checkCoreDNSLoops: CoreDNS's loop plugin stops it when its queries come
// back to it, which is what a loopback upstream does.
func checkCoreDNSLoops(pods []corev1.Pod, logs map[string]string) []Finding {
	var out []Finding
	for _, p := range pods {
		if p.Labels["k8s-app"] != "kube-dns" {
			continue
		}
		l := logs[p.Name]
		if strings.Contains(l, "Loop (") && strings.Contains(l, "detected") {
			out = append(out, Finding{CheckCoreDNSLoops, Problem, fmt.Sprintf("CoreDNS pod %s stopped on a forwarding loop: %s", p.Name, lineWith(l, "detected")),
				"give pods a resolv.conf with a reachable nameserver (see the dns finding), then 'kubectl -n kube-system delete pod -l k8s-app=kube-dns'"})
		}
	}
	return out
}

func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// soonExpiry is how long before a certificate's end doctor warns.
const soonExpiry = 30 * 24 * time.Hour

// checkCerts: an expired certificate takes the cluster down (rke's "wait
// one year, cry"); one about to expire is a warning.
func checkCerts(exp []pki.Expiry, now time.Time) []Finding {
	var expired, soon []string
	for _, e := range exp {
		switch left := e.NotAfter.Sub(now); {
		case left <= 0:
			expired = append(expired, fmt.Sprintf("%s (expired %s)", e.Name, e.NotAfter.Format(time.RFC3339)))
		case left < soonExpiry:
			soon = append(soon, fmt.Sprintf("%s (in %dd)", e.Name, int(left.Hours()/24)))
		}
	}
	sort.Strings(expired)
	var out []Finding
	const fix = "dk8s certs renew, then 'dk8s stop && dk8s start' to load them"
	if len(expired) > 0 {
		out = append(out, Finding{CheckCerts, Problem, "expired certificates: " + strings.Join(expired, ", "), fix})
	}
	if len(soon) > 0 {
		out = append(out, Finding{CheckCerts, Warning, "certificates expiring within 30 days: " + strings.Join(soon, ", "), fix})
	}
	return out
}
