package bootstrap

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/dk8s/dk8s/internal/atomicfile"
)

// Where systemd is PID 1 it supervises the node's agents, as it does on
// every kubeadm host; dk8s's Docker containers stand in for it elsewhere.
const unitDir = "/etc/systemd/system"

// SystemdUnit renders the unit of a node agent: restarted always, started
// at boot, after what it needs.
func SystemdUnit(comp string, cmd []string, after []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by dk8s: %s for this Kubernetes node.\n[Unit]\nDescription=dk8s %s\n", comp, comp)
	fmt.Fprintf(&b, "Wants=network-online.target\nAfter=network-online.target %s\n\n", strings.Join(after, " "))
	fmt.Fprintf(&b, "[Service]\nExecStart=%s\nRestart=always\nRestartSec=2\n", quoteCommand(cmd))
	if comp == "containerd" {
		// Pods' shims outlive a runtime restart, and the runtime manages
		// the cgroups below its own.
		b.WriteString("KillMode=process\nDelegate=yes\nOOMScoreAdjust=-999\nLimitNOFILE=1048576\n")
	}
	b.WriteString("\n[Install]\nWantedBy=multi-user.target\n")
	return b.String()
}

func quoteCommand(cmd []string) string {
	var parts []string
	for _, a := range cmd {
		if strings.ContainsAny(a, " \t\"'\\") {
			a = `"` + strings.ReplaceAll(strings.ReplaceAll(a, `\`, `\\`), `"`, `\"`) + `"`
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

func unitName(comp string) string { return "dk8s-" + comp + ".service" }

// applyUnits installs the node agents' units and (re)starts them: a unit
// whose text changed is restarted, one that is the same is only started.
func applyUnits(units map[string]string) ([]string, error) {
	var actions []string
	changed := map[string]bool{}
	for _, comp := range NodeComponents {
		path := filepath.Join(unitDir, unitName(comp))
		wrote, err := atomicfile.WriteIfChanged(path, []byte(units[comp]), 0o644)
		if err != nil {
			return nil, err
		}
		changed[comp] = wrote
	}
	if err := systemctl("daemon-reload"); err != nil {
		return nil, err
	}
	for _, comp := range NodeComponents {
		verb, action := "start", "unchanged"
		if changed[comp] {
			verb, action = "restart", "installed"
		}
		if err := systemctl("enable", unitName(comp)); err != nil {
			return nil, err
		}
		if err := systemctl(verb, unitName(comp)); err != nil {
			return nil, err
		}
		actions = append(actions, unitName(comp)+" "+action)
	}
	return actions, nil
}

// removeUnits stops, disables and deletes the node agents' units.
func removeUnits() {
	for i := len(NodeComponents) - 1; i >= 0; i-- {
		name := unitName(NodeComponents[i])
		if _, err := os.Stat(filepath.Join(unitDir, name)); err != nil {
			continue
		}
		systemctl("disable", "--now", name)
		os.Remove(filepath.Join(unitDir, name))
	}
	systemctl("daemon-reload")
}

func systemctl(args ...string) error {
	if out, err := exec.Command("systemctl", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("systemctl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
