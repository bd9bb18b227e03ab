package host

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os/exec"
	"slices"
	"strings"
)

// removeChains deletes, with iptables and ip6tables through r,
// kube-proxy's and kubelet's KUBE-* chains, flanneld's FLANNEL-* chains and
// the CNI chains of the dk8s network, the rules elsewhere that jump to
// them, and the CNI firewall rules for addresses of podCIDR; nothing else.
// A host without the tool, or a kernel without the table, has none of
// them; a table that cannot be read otherwise (the xtables lock held, no
// permission) is an error, naming it, not a table taken for clean.
func removeChains(ctx context.Context, r Runner, podCIDR string) error {
	var errs []error
	for _, tool := range []string{"iptables", "ip6tables"} {
		errs = append(errs, removeChainsWith(ctx, r, tool, podCIDR)...)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w; what those tables hold was left: run the reset again once they can be read", errors.Join(errs...))
	}
	return nil
}

func removeChainsWith(ctx context.Context, r Runner, tool, podCIDR string) []error {
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
	iptables := func(args ...string) ([]byte, error) { return r.Run(ctx, nil, tool, args...) }
	var errs []error
	for _, table := range []string{"nat", "filter", "mangle"} {
		out, err := iptables("-t", table, "-S")
		switch {
		case errors.Is(err, exec.ErrNotFound) || err != nil && strings.Contains(err.Error(), "executable file not found"):
			return nil // no such tool here: nothing it made
		case err != nil && strings.Contains(err.Error(), "Table does not exist"):
			continue // not in this kernel: nothing in it
		case err != nil:
			errs = append(errs, fmt.Errorf("reading the %s table with %s: %w", table, tool, err))
			continue
		}
		ours := map[string]bool{}
		var rules [][]string
		for _, line := range strings.Split(string(out), "\n") {
			f := splitRule(line)
			if len(f) == 2 && f[0] == "-N" && (strings.HasPrefix(f[1], "KUBE-") || strings.HasPrefix(f[1], "FLANNEL-")) {
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
				iptables(append([]string{"-t", table, "-D"}, f[1:]...)...)
			}
		}
		// Every chain is emptied before any is deleted: one may jump to
		// another.
		for _, chain := range slices.Sorted(maps.Keys(ours)) {
			iptables("-t", table, "-F", chain)
		}
		for _, chain := range slices.Sorted(maps.Keys(ours)) {
			iptables("-t", table, "-X", chain)
		}
	}
	return errs
}

// target is the chain or verdict a rule jumps to.
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
