package bootstrap

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/dk8s/dk8s/pkg/addons"
	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/host"
)

// Finding is one preflight result: a failure stops start before anything is
// changed; a warning is shown and start goes on.
type Finding struct {
	Check   string
	Problem string
	Remedy  string
	Fatal   bool
}

func (f Finding) String() string {
	return fmt.Sprintf("%s: %s. %s", f.Check, f.Problem, f.Remedy)
}

// PreflightError holds the failures that stopped start.
type PreflightError struct{ Failures []Finding }

func (e *PreflightError) Error() string {
	var lines []string
	for _, f := range e.Failures {
		lines = append(lines, "  "+f.String())
	}
	return "preflight checks failed; nothing was changed:\n" + strings.Join(lines, "\n")
}

// minFreeDisk is the least free space start accepts under the cluster
// directory: etcd stops accepting writes when its disk fills.
const minFreeDisk = 1 << 30

// Preflight checks the host before anything is changed: root, the Docker
// API version, the components' ports (free, or held by dk8s's own running
// container), free disk, and what a node will need (swap off, IP
// forwarding, bridge netfilter) as warnings.
func Preflight(ctx context.Context, engine containers.Engine, cfg Config) ([]Finding, error) {
	return preflight(ctx, engine, cfg, listeners)
}

// preflight is Preflight with the host's listening sockets read by
// listening, so that a unit test does not depend on what this host runs.
func preflight(ctx context.Context, engine containers.Engine, cfg Config, listening func() map[int]string) ([]Finding, error) {
	return hostChecks(ctx, engine, cfg, listening, true)
}

// hostChecks are the checks of a host about to run the control plane
// (unless controlPlane is false: a joining worker) and, with cfg.Node, a
// node.
func hostChecks(ctx context.Context, engine containers.Engine, cfg Config, listening func() map[int]string, controlPlaneToo bool) ([]Finding, error) {
	var out []Finding
	if os.Geteuid() != 0 {
		out = append(out, Finding{"root", "dk8s runs as uid " + strconv.Itoa(os.Geteuid()), "Run it as root (sudo): it owns " + cfg.Dir + " and binds host ports", true})
	}
	v, err := engine.Version(ctx)
	if err != nil {
		return nil, err
	}
	if apiBelow(v.APIVersion, 1, 40) {
		out = append(out, Finding{"docker", "the Docker daemon speaks API " + v.APIVersion, "Upgrade Docker to 19.03 or later (API 1.40)", true})
	}
	holders := listening()
	for _, cp := range controlPlane() {
		if !controlPlaneToo {
			break
		}
		comp := cp.Name
		c, err := engine.InspectContainer(ctx, containerName(comp))
		if dir := c.Labels[containers.LabelDir]; err == nil && dir != cfg.Dir {
			out = append(out, Finding{"containers", fmt.Sprintf("%s runs the control plane kept in %s", c.Name, dir),
				fmt.Sprintf("This host runs one at a time: 'dk8s reset --dir %s' first (its data stays)", dir), true})
			continue
		}
		if err == nil && c.Running {
			continue // its own ports are held by itself
		}
		for _, port := range cp.Ports {
			if who, busy := holders[port]; busy {
				out = append(out, Finding{"port " + strconv.Itoa(port), fmt.Sprintf("%s needs it, and %s is listening on it", comp, who),
					"Stop that process (a leftover kubeadm or an earlier cluster?) and run dk8s start again", true})
			}
		}
	}
	if cfg.Node {
		out = append(out, nodePorts(ctx, engine, cfg, holders)...)
		// The service range is routed to the host's own device: it must
		// not take another network's traffic.
		conflicts, err := host.ServiceRangeConflicts(ctx, host.Exec{}, cfg.ServiceCIDR)
		if err != nil {
			return nil, err
		}
		if lo := host.LoopbackResolvers(); len(lo) > 0 {
			out = append(out, Finding{"dns", "this host's resolver is " + strings.Join(lo, ", ") + ", a loopback address, which pods cannot reach (CoreDNS would find a loop and stop)",
				"Point /etc/resolv.conf at a reachable nameserver (your network's or provider's), or CoreDNS cannot resolve names outside the cluster", false})
		}
		if len(conflicts) > 0 {
			out = append(out, Finding{"service range", fmt.Sprintf("%s overlaps %s", cfg.ServiceCIDR, strings.Join(conflicts, "; ")),
				"Choose a range nothing on this host or its networks uses: --service-cidr (e.g. 10.112.0.0/12)", true})
		}
	}
	if mem := host.Memory(); cfg.Node && cfg.Profile == ProfileDefault && mem > 0 && mem < smallMachine {
		out = append(out, Finding{"memory", fmt.Sprintf("this host has %d MiB of memory", mem>>20),
			"On 1 to 2 GB, --profile small keeps the node's programs to less of it, for some more CPU (kept for later runs)", false})
	}
	if free, path, err := freeDisk(cfg.Dir); err == nil && free < minFreeDisk {
		out = append(out, Finding{"disk", fmt.Sprintf("%s has %d MiB free", path, free>>20), "Free at least 1 GiB there, or choose another --dir", true})
	}
	if data, err := os.ReadFile("/proc/swaps"); err == nil && len(strings.Split(strings.TrimSpace(string(data)), "\n")) > 1 {
		// kubelet refuses to run with swap: a node would fail after the
		// control plane is up, so it is a failure before anything starts.
		out = append(out, Finding{"swap", "swap is on", "kubelet refuses to run with swap by default: 'swapoff -a' (and remove it from /etc/fstab), or start with --control-plane-only", cfg.Node})
	}
	if data, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err == nil && strings.TrimSpace(string(data)) != "1" {
		out = append(out, Finding{"ip_forward", "IPv4 forwarding is off", "Pods need it: 'sysctl -w net.ipv4.ip_forward=1'", false})
	}
	if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables"); err != nil {
		out = append(out, Finding{"br_netfilter", "the br_netfilter module is not loaded", "Services need it: 'modprobe br_netfilter'", false})
	}
	return out, nil
}

// smallMachine is the memory below which start suggests the small
// profile.
const smallMachine = 2560 << 20

// nodePorts checks the node's ports before anything starts, unless this
// cluster's node already runs here (its kubelet and kube-proxy hold them).
func nodePorts(ctx context.Context, engine containers.Engine, cfg Config, holders map[int]string) []Finding {
	// This cluster's node, running or stopped: its pods (kube-proxy) keep
	// their ports through a 'dk8s stop', and through the loss of kubelet's
	// container (removed by hand: start, or the agent, puts it back) while
	// the runtime still runs them.
	for _, agent := range hostAgentNames() {
		if c, err := engine.InspectContainer(ctx, containerName(agent)); err == nil && c.Labels[containers.LabelDir] == cfg.Dir {
			return nil
		}
	}
	if nodeUnits().Installed("kubelet") && host.SystemdIsInit() {
		return nil // its unit runs it; start restarts it if its unit changed
	}
	ports := map[string][]int{"kube-proxy": addons.KubeProxyPorts, "flannel": {addons.FlannelHealthPort}}
	names := []string{"kube-proxy", "flannel"}
	for _, c := range hostAgents() {
		ports[c.Name], names = c.Ports, append([]string{c.Name}, names...)
	}
	var out []Finding
	for _, comp := range names {
		for _, port := range ports[comp] {
			if who, busy := holders[port]; busy {
				out = append(out, Finding{"port " + strconv.Itoa(port), fmt.Sprintf("this node's %s needs it, and %s is listening on it", comp, who),
					"Stop that process (a kubelet or kube-proxy of another cluster?) and run dk8s start again, or start with --control-plane-only", true})
			}
		}
	}
	return out
}

func apiBelow(v string, major, minor int) bool {
	var a, b int
	if _, err := fmt.Sscanf(v, "%d.%d", &a, &b); err != nil {
		return false
	}
	return a < major || (a == major && b < minor)
}

// freeDisk reports the free bytes of the file system that holds dir, or of
// its nearest existing parent.
func freeDisk(dir string) (uint64, string, error) {
	for p := dir; ; p = filepath.Dir(p) {
		var st syscall.Statfs_t
		if err := syscall.Statfs(p, &st); err == nil {
			return st.Bavail * uint64(st.Bsize), p, nil
		}
		if p == "/" {
			return 0, p, fmt.Errorf("no file system for %s", dir)
		}
	}
}

// listeners maps each TCP port something listens on to the process
// listening, "NAME (pid N)", read from /proc: which socket inode listens on
// the port, then which process holds that inode open.
func listeners() map[int]string {
	inodes := map[string]int{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(fields[1], ":")
			port, err := strconv.ParseInt(hexPort, 16, 32)
			if err == nil {
				inodes[fields[9]] = int(port)
			}
		}
		fh.Close()
	}
	out := map[int]string{}
	for _, port := range inodes {
		out[port] = "an unknown process"
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range procs {
		target, err := os.Readlink(fd)
		if err != nil || !strings.HasPrefix(target, "socket:[") {
			continue
		}
		port, ok := inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")]
		if !ok {
			continue
		}
		pid := strings.Split(fd, "/")[2]
		comm, _ := os.ReadFile("/proc/" + pid + "/comm")
		out[port] = fmt.Sprintf("%s (pid %s)", strings.TrimSpace(string(comm)), pid)
	}
	return out
}

// failures says the warnings among findings through emit and returns the
// failures as one PreflightError, or nil.
func failures(findings []Finding, emit func(Event)) error {
	var fatal []Finding
	for _, f := range findings {
		if f.Fatal {
			fatal = append(fatal, f)
		} else {
			emit(Event{Step: "preflight", Message: f.String(), Warning: true})
		}
	}
	if len(fatal) > 0 {
		return &PreflightError{Failures: fatal}
	}
	return nil
}
