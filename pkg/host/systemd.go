package host

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dk8s/dk8s/internal/atomicfile"
)

// UnitDir is where the node agents' units go where systemd is PID 1: there
// it supervises them, as it does on every kubeadm host; dk8s's Docker
// containers stand in for it elsewhere.
const UnitDir = "/etc/systemd/system"

// SystemdUnit renders the unit of a node agent: restarted always, started
// at boot, after what it needs. Its description names the agent's version
// (when known), which 'dk8s ps' shows.
func SystemdUnit(comp, version string, cmd, env, after []string) string {
	var b strings.Builder
	desc := strings.TrimSpace(unitDescPrefix + comp + " " + version)
	fmt.Fprintf(&b, "# Written by dk8s: %s for this Kubernetes node.\n[Unit]\nDescription=%s\n", comp, desc)
	fmt.Fprintf(&b, "Wants=network-online.target\nAfter=network-online.target %s\n\n", strings.Join(after, " "))
	b.WriteString("[Service]\n")
	for _, kv := range env {
		fmt.Fprintf(&b, "Environment=%s\n", quoteCommand([]string{kv}))
	}
	fmt.Fprintf(&b, "ExecStart=%s\nRestart=always\nRestartSec=2\n", quoteCommand(cmd))
	if comp == "containerd" {
		// Pods' shims outlive a runtime restart, and the runtime manages
		// the cgroups below its own.
		b.WriteString("KillMode=process\nDelegate=yes\nOOMScoreAdjust=-999\nLimitNOFILE=1048576\n")
	}
	b.WriteString("\n[Install]\nWantedBy=multi-user.target\n")
	return b.String()
}

const unitDescPrefix = "dk8s "

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

// UnitState is what systemd says of a node agent's unit.
type UnitState struct {
	// Active and Sub are systemd's ActiveState and SubState: "active" and
	// "running" when it runs.
	Active, Sub string
	// Restarts counts the restarts systemd made (NRestarts).
	Restarts int
	// Uptime is how long its main process has run; 0 when none does.
	Uptime time.Duration
	// Version is the agent's version as its unit names it ("" if not).
	Version string
}

// Running tells whether the unit's main process runs.
func (s UnitState) Running() bool { return s.Active == "active" && s.Sub == "running" }

// State is the unit's state in the words 'dk8s ps' uses for containers:
// running, restarting (between two tries), stopped, failed, or systemd's
// own word for anything else.
func (s UnitState) State() string {
	switch {
	case s.Running():
		return "running"
	case s.Sub == "auto-restart" || s.Active == "activating":
		return "restarting"
	case s.Active == "inactive":
		return "stopped"
	case s.Active == "failed":
		return "failed"
	}
	return s.Active + "/" + s.Sub
}

// State reads comp's unit's state from systemd.
func (u Units) State(ctx context.Context, comp string) (UnitState, error) {
	props := []string{"ActiveState", "SubState", "NRestarts", "ExecMainStartTimestampMonotonic", "MainPID", "Description"}
	out, err := u.Runner.Run(ctx, nil, "systemctl", "show", "--property="+strings.Join(props, ","), UnitName(comp))
	if err != nil {
		return UnitState{}, fmt.Errorf("systemctl show %s: %w", UnitName(comp), err)
	}
	return parseUnitState(comp, string(out), monotonicNow()), nil
}

// parseUnitState reads systemctl show's key=value lines; now is the
// monotonic clock, which systemd's start timestamp counts on.
func parseUnitState(comp, show string, now time.Duration) UnitState {
	kv := map[string]string{}
	for _, line := range strings.Split(show, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = v
		}
	}
	s := UnitState{Active: kv["ActiveState"], Sub: kv["SubState"]}
	s.Restarts, _ = strconv.Atoi(kv["NRestarts"])
	if started, err := strconv.ParseInt(kv["ExecMainStartTimestampMonotonic"], 10, 64); err == nil && started > 0 && kv["MainPID"] != "0" && s.Running() {
		if up := now - time.Duration(started)*time.Microsecond; up > 0 {
			s.Uptime = up
		}
	}
	s.Version = strings.TrimSpace(strings.TrimPrefix(kv["Description"], unitDescPrefix+comp))
	return s
}

func monotonicNow() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// Journal writes the last lines of comp's unit's journal to w ("all" or a
// count), following it when follow is set, until ctx ends.
func Journal(ctx context.Context, comp, tail string, follow bool, w io.Writer) error {
	args := []string{"--no-pager", "--output", "short-iso", "--unit", UnitName(comp)}
	if tail != "" && tail != "all" {
		args = append(args, "--lines", tail)
	}
	if follow {
		args = append(args, "--follow")
	}
	cmd := exec.CommandContext(ctx, "journalctl", args...)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("journalctl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}
