package doctor

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/dk8s/dk8s/pkg/host"
)

func checkIPForward(v string) []Finding {
	if strings.TrimSpace(v) == "1" {
		return nil
	}
	return []Finding{{CheckIPForward, Problem, "IPv4 forwarding is off (net.ipv4.ip_forward=" + orUnreadable(v) + "): pods' traffic to Services and beyond the node is dropped",
		"sysctl -w net.ipv4.ip_forward=1 (and set it in /etc/sysctl.d/ to keep it across reboots)"}}
}

func checkBridge(v string) []Finding {
	switch strings.TrimSpace(v) {
	case "1":
		return nil
	case "":
		return []Finding{{CheckBrNetfilter, Problem, "the br_netfilter module is not loaded: traffic between pods on the bridge skips iptables, so Services (and DNS) fail from pods",
			"modprobe br_netfilter && sysctl -w net.bridge.bridge-nf-call-iptables=1 (add br_netfilter to /etc/modules-load.d/ to keep it)"}}
	}
	return []Finding{{CheckBrNetfilter, Problem, "net.bridge.bridge-nf-call-iptables is " + strings.TrimSpace(v) + ": traffic between pods on the bridge skips iptables, so Services (and DNS) fail from pods",
		"sysctl -w net.bridge.bridge-nf-call-iptables=1 (and set it in /etc/sysctl.d/)"}}
}

// checkSwap: kubelet refuses to start with swap on unless its
// configuration tolerates it (failSwapOn: false).
func checkSwap(swaps string, k KubeletConfig) []Finding {
	lines := strings.Split(strings.TrimSpace(swaps), "\n")
	if len(lines) < 2 {
		return nil // the header only: no swap
	}
	var devs []string
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 0 {
			devs = append(devs, f[0])
		}
	}
	on := fmt.Sprintf("swap is on (%s)", strings.Join(devs, ", "))
	if k.FailSwapOn != nil && !*k.FailSwapOn {
		return []Finding{{CheckSwap, Warning, on + ", and kubelet is set to tolerate it (failSwapOn: false)", "none needed; 'swapoff -a' if pods should never be swapped"}}
	}
	return []Finding{{CheckSwap, Problem, on + ": kubelet refuses to run with swap",
		"swapoff -a, and remove the swap entries from /etc/fstab so it stays off after a reboot"}}
}

// checkResolvers: a loopback nameserver in the resolv.conf kubelet hands
// pods is, from a pod, the pod itself; CoreDNS forwarding there finds a
// loop and crashes. systemd-resolved's stub (127.0.0.53) is the usual one.
func checkResolvers(path, data string) []Finding {
	lo := host.LoopbackNameservers(data)
	if len(lo) == 0 {
		return nil
	}
	fix := "point kubelet's resolvConf at a file naming a reachable nameserver (your network's or provider's), then restart kubelet"
	if strings.Contains(data, "127.0.0.53") {
		fix = "set resolvConf: /run/systemd/resolve/resolv.conf (systemd-resolved's upstream list) in kubelet's configuration, then restart kubelet and delete the CoreDNS pods"
	}
	return []Finding{{CheckDNS, Problem, fmt.Sprintf("%s, the resolv.conf kubelet hands pods, names %s, a loopback address: CoreDNS forwards to itself, finds a loop and crashes", path, strings.Join(lo, ", ")), fix}}
}

// The free space under which kubelet evicts pods (its default
// nodefs.available threshold), and a margin above it worth a warning.
const (
	evictFree = 0.10
	warnFree  = 0.15
)

func checkFree(disks []DiskFree) []Finding {
	var out []Finding
	for _, d := range disks {
		if d.Total == 0 {
			continue
		}
		share := float64(d.Free) / float64(d.Total)
		what := fmt.Sprintf("%s has %d MiB free (%.0f%%)", d.Path, d.Free>>20, share*100)
		switch {
		case share < evictFree || d.Free < 1<<30:
			out = append(out, Finding{CheckDisk, Problem, what + ": kubelet evicts pods and etcd stops taking writes as a disk fills",
				"free space there: 'docker system prune' and 'dk8s etcd defrag' reclaim some; or move the cluster to a larger disk"})
		case share < warnFree:
			out = append(out, Finding{CheckDisk, Warning, what + ": below 10% kubelet evicts pods", "free space there soon"})
		}
	}
	return out
}

func orUnreadable(v string) string {
	if v = strings.TrimSpace(v); v == "" {
		return "unreadable"
	}
	return v
}

// checkAgents names a node agent's container the engine could not start.
// One made by an earlier dk8s bound the host's root rshared, which a
// host whose init is not systemd does not make shared at boot: after a
// reboot it stays down until a start or join makes it again.
func checkAgents(errs map[string]string) []Finding {
	var out []Finding
	for _, name := range slices.Sorted(maps.Keys(errs)) {
		msg := errs[name]
		fix := "'docker start " + name + "' once the cause is gone; 'dk8s start' (or 'dk8s join' on a worker) makes it again"
		if strings.Contains(msg, "shared mount") {
			fix = "it was made by an earlier dk8s and needs / to be a shared mount, which this host's boot does not make: run 'dk8s start' (or 'dk8s join' on a worker) once to make it again, with no such need"
		}
		out = append(out, Finding{CheckAgents, Problem, name + " cannot start: " + firstLine(msg), fix})
	}
	return out
}
