package host

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dk8s/dk8s/internal/atomicfile"
)

// UnitDir is where the node agents' units go where systemd is PID 1: there
// it supervises them, as it does on every kubeadm host; dk8s's Docker
// containers stand in for it elsewhere.
const UnitDir = "/etc/systemd/system"

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

// UnitName is the name of comp's unit.
func UnitName(comp string) string { return "dk8s-" + comp + ".service" }

// Unit is a node agent's unit: its component and its text.
type Unit struct {
	Component string
	Text      string
}

// Units are the node agents' units, kept in Dir and driven through
// systemctl by Runner.
type Units struct {
	Runner Runner
	// Dir is where the unit files go: UnitDir on a host.
	Dir string
}

func (u Units) path(comp string) string { return filepath.Join(u.Dir, UnitName(comp)) }

// Installed tells whether comp's unit is in Dir.
func (u Units) Installed(comp string) bool {
	_, err := os.Stat(u.path(comp))
	return err == nil
}

// Apply installs units and (re)starts them, in order: a unit whose text
// changed is restarted, one that is the same is only started. It reports
// what it did to each, "dk8s-kubelet.service installed" or "... unchanged".
func (u Units) Apply(ctx context.Context, units []Unit) ([]string, error) {
	var actions []string
	changed := map[string]bool{}
	for _, unit := range units {
		path := u.path(unit.Component)
		old, _ := os.ReadFile(path)
		if string(old) != unit.Text {
			if err := atomicfile.Write(path, []byte(unit.Text), 0o644); err != nil {
				return nil, err
			}
			changed[unit.Component] = true
		}
	}
	if err := Systemctl(ctx, u.Runner, "daemon-reload"); err != nil {
		return nil, err
	}
	for _, unit := range units {
		name := UnitName(unit.Component)
		verb, action := "start", "unchanged"
		if changed[unit.Component] {
			verb, action = "restart", "installed"
		}
		if err := Systemctl(ctx, u.Runner, "enable", name); err != nil {
			return nil, err
		}
		if err := Systemctl(ctx, u.Runner, verb, name); err != nil {
			return nil, err
		}
		actions = append(actions, name+" "+action)
	}
	return actions, nil
}

// Remove stops, disables and deletes the units of comps that are
// installed, in the reverse of comps' order (the reverse of start order).
// It goes on past failures: it is the last word of a reset.
func (u Units) Remove(ctx context.Context, comps []string) {
	for i := len(comps) - 1; i >= 0; i-- {
		if !u.Installed(comps[i]) {
			continue
		}
		Systemctl(ctx, u.Runner, "disable", "--now", UnitName(comps[i]))
		os.Remove(u.path(comps[i]))
	}
	Systemctl(ctx, u.Runner, "daemon-reload")
}
