package bootstrap

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/dk8s/dk8s/pkg/host"
)

// cleanupNode undoes what running pods left on the host once the runtime
// and kubelet are gone: the mounts under the kubelet's directory (always:
// they are runtime state, and a removed kubelet cannot clean them), and with
// purge also the CNI bridge and its address records, the iptables chains of
// kube-proxy and of dk8s's CNI network, and the runtime's state directory.
func cleanupNode(cfg Config, purge bool) error {
	if _, err := os.Stat(filepath.Join(cfg.Dir, "kubelet")); os.IsNotExist(err) {
		return nil // never a node
	}
	for _, dir := range []string{filepath.Join(cfg.Dir, "kubelet"), host.RuntimeState} {
		if err := UnmountUnder(dir); err != nil {
			return err
		}
	}
	if !purge {
		return nil
	}
	if err := UnmountUnder(cfg.Dir); err != nil {
		return err
	}
	var errs []string
	if _, err := os.Stat("/sys/class/net/dk8s0"); err == nil {
		if out, err := exec.Command("ip", "link", "delete", "dk8s0").CombinedOutput(); err != nil {
			errs = append(errs, fmt.Sprintf("deleting the dk8s0 bridge: %v: %s", err, out))
		}
	}
	for _, dir := range []string{"/var/lib/cni/networks/dk8s", host.RuntimeState} {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if matches, _ := filepath.Glob("/var/lib/cni/results/dk8s-*"); len(matches) > 0 {
		for _, m := range matches {
			os.Remove(m)
		}
	}
	if err := removeChains(cfg.PodCIDR); err != nil {
		errs = append(errs, err.Error())
	}
	if err := removeServiceRoute(); err != nil {
		errs = append(errs, err.Error())
	}
	removeCgroups(RuntimeCgroup)
	if len(errs) > 0 {
		return fmt.Errorf("cleaning up the node: %s", strings.Join(errs, "; "))
	}
	return nil
}

// UnmountUnder detaches every mount at or below dir, deepest first.
func UnmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			points = append(points, fields[4])
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && err != syscall.EINVAL && err != syscall.ENOENT {
			return fmt.Errorf("unmounting %s: %w", p, err)
		}
	}
	return nil
}

// removeChains deletes kube-proxy's KUBE-* chains and the CNI chains of the
// dk8s network, the rules elsewhere that jump to them, and the CNI firewall
// rules for addresses of the pod range.
func removeChains(podCIDR string) error {
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil
	}
	_, pods, _ := net.ParseCIDR(podCIDR)
	inPods := func(args []string) bool {
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-s" || args[i] == "-d" {
				ip, _, err := net.ParseCIDR(args[i+1])
				if err != nil {
					ip = net.ParseIP(args[i+1])
				}
				if pods != nil && ip != nil && pods.Contains(ip) {
					return true
				}
			}
		}
		return false
	}
	for _, table := range []string{"nat", "filter", "mangle"} {
		out, err := exec.Command("iptables", "-t", table, "-S").Output()
		if err != nil {
			continue
		}
		ours := map[string]bool{}
		var rules [][]string
		for _, line := range strings.Split(string(out), "\n") {
			f := splitRule(line)
			if len(f) == 2 && f[0] == "-N" && strings.HasPrefix(f[1], "KUBE-") {
				ours[f[1]] = true
			}
			if len(f) > 2 && f[0] == "-A" {
				rules = append(rules, f)
				if t := target(f); strings.HasPrefix(t, "CNI-") && strings.Contains(line, `name: \"dk8s\"`) {
					ours[t] = true
				}
			}
		}
		for _, f := range rules {
			if ours[f[1]] {
				continue // goes with its chain
			}
			if ours[target(f)] || (f[1] == "CNI-FORWARD" && inPods(f)) {
				exec.Command("iptables", append([]string{"-t", table, "-D"}, f[1:]...)...).Run()
			}
		}
		for chain := range ours {
			exec.Command("iptables", "-t", table, "-F", chain).Run()
		}
		for chain := range ours {
			exec.Command("iptables", "-t", table, "-X", chain).Run()
		}
	}
	return nil
}

func target(rule []string) string {
	for i := range rule {
		if rule[i] == "-j" && i+1 < len(rule) {
			return rule[i+1]
		}
	}
	return ""
}

// splitRule splits a line of `iptables -S` into arguments, as a shell
// would: double quotes group, a backslash escapes.
func splitRule(line string) []string {
	var args []string
	var cur strings.Builder
	inQuote, has := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			has = true
		case c == '"':
			inQuote, has = !inQuote, true
		case c == ' ' && !inQuote:
			if has {
				args = append(args, cur.String())
				cur.Reset()
				has = false
			}
		default:
			cur.WriteByte(c)
			has = true
		}
	}
	if has {
		args = append(args, cur.String())
	}
	return args
}
