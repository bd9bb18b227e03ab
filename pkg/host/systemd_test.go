package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dk8s/dk8s/pkg/host/hosttest"
)

func TestSystemdUnit(t *testing.T) {
	u := SystemdUnit("kubelet", "v1.37.2", []string{"/var/lib/dk8s/bin/kubelet", "--config=/var/lib/dk8s/kubelet/config.yaml", "--node-labels=a=b c"}, nil, []string{"dk8s-containerd.service"})
	for _, want := range []string{
		"Restart=always",
		"Description=dk8s kubelet v1.37.2\n",
		"WantedBy=multi-user.target",
		"After=network-online.target dk8s-containerd.service",
		`ExecStart=/var/lib/dk8s/bin/kubelet --config=/var/lib/dk8s/kubelet/config.yaml "--node-labels=a=b c"`,
	} {
		if !strings.Contains(u, want) {
			t.Errorf("unit lacks %q:\n%s", want, u)
		}
	}
	if strings.Contains(u, "KillMode") {
		t.Error("kubelet's unit should use the default KillMode")
	}
	if c := SystemdUnit("containerd", "", []string{"/usr/bin/containerd"}, nil, nil); !strings.Contains(c, "KillMode=process") || !strings.Contains(c, "Delegate=yes") {
		t.Errorf("the runtime's unit should keep pods' shims on restart and own its cgroups:\n%s", c)
	}
}

func TestUnitsApply(t *testing.T) {
	dir := t.TempDir()
	r := &hosttest.Runner{}
	units := Units{Runner: r, Dir: dir}
	want := []Unit{
		{Component: "containerd", Text: SystemdUnit("containerd", "", []string{"/usr/bin/containerd"}, nil, []string{"docker.service"})},
		{Component: "kubelet", Text: SystemdUnit("kubelet", "v1.37.2", []string{"/var/lib/dk8s/bin/kubelet"}, nil, []string{"dk8s-containerd.service"})},
	}
	actions, err := units.Apply(context.Background(), want)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(actions, "|") != "dk8s-containerd.service installed|dk8s-kubelet.service installed" {
		t.Errorf("actions %q", actions)
	}
	for _, u := range want {
		if data, err := os.ReadFile(filepath.Join(dir, UnitName(u.Component))); err != nil || string(data) != u.Text {
			t.Errorf("%s should hold the unit: %v", UnitName(u.Component), err)
		}
		if !units.Installed(u.Component) {
			t.Errorf("%s should be installed", u.Component)
		}
	}
	if got := strings.Join(r.Calls, "\n"); got != strings.Join([]string{
		"systemctl daemon-reload",
		"systemctl enable dk8s-containerd.service", "systemctl restart dk8s-containerd.service",
		"systemctl enable dk8s-kubelet.service", "systemctl restart dk8s-kubelet.service",
	}, "\n") {
		t.Errorf("a first apply reloads, enables and restarts both:\n%s", got)
	}

	r.Calls = nil
	want[1].Text = SystemdUnit("kubelet", "v1.37.2", []string{"/var/lib/dk8s/bin/kubelet", "--v=2"}, nil, []string{"dk8s-containerd.service"})
	actions, err = units.Apply(context.Background(), want)
	if err != nil || strings.Join(actions, "|") != "dk8s-containerd.service unchanged|dk8s-kubelet.service installed" {
		t.Fatalf("actions %q, %v", actions, err)
	}
	if got := strings.Join(r.Calls, "\n"); got != strings.Join([]string{
		"systemctl daemon-reload",
		"systemctl enable dk8s-containerd.service", "systemctl start dk8s-containerd.service",
		"systemctl enable dk8s-kubelet.service", "systemctl restart dk8s-kubelet.service",
	}, "\n") {
		t.Errorf("only the changed unit is restarted; the same one is only started:\n%s", got)
	}

	failing := &hosttest.Runner{Answer: func(cmd string, _ int) ([]byte, error) {
		if cmd == "systemctl enable dk8s-containerd.service" {
			return nil, errors.New("exit status 1: Access denied")
		}
		return nil, nil
	}}
	_, err = Units{Runner: failing, Dir: dir}.Apply(context.Background(), want)
	if err == nil || !strings.Contains(err.Error(), "systemctl enable dk8s-containerd.service: exit status 1: Access denied") {
		t.Errorf("a failing systemctl should stop the apply and be named: %v", err)
	}
	if len(failing.Commands("systemctl restart")) > 0 || len(failing.Commands("systemctl start")) > 0 {
		t.Errorf("nothing is started after a failure: %q", failing.Calls)
	}
}

func TestUnitsRemove(t *testing.T) {
	dir := t.TempDir()
	for _, comp := range []string{"containerd", "kubelet"} {
		os.WriteFile(filepath.Join(dir, UnitName(comp)), []byte("[Unit]\n"), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "other.service"), []byte("[Unit]\n"), 0o644)
	r := &hosttest.Runner{Answer: func(cmd string, _ int) ([]byte, error) {
		return nil, errors.New("exit status 5: not loaded") // Remove goes on regardless
	}}
	units := Units{Runner: r, Dir: dir}
	units.Remove(context.Background(), []string{"containerd", "kubelet"})
	if got := strings.Join(r.Calls, "\n"); got != "systemctl disable --now dk8s-kubelet.service\nsystemctl disable --now dk8s-containerd.service\nsystemctl daemon-reload" {
		t.Errorf("units go in the reverse of start order, then a reload:\n%s", got)
	}
	if units.Installed("kubelet") || units.Installed("containerd") {
		t.Error("the unit files should be gone")
	}
	if _, err := os.Stat(filepath.Join(dir, "other.service")); err != nil {
		t.Error("a unit not dk8s's must stay")
	}
	r.Calls = nil
	units.Remove(context.Background(), []string{"containerd", "kubelet"})
	if strings.Join(r.Calls, "|") != "systemctl daemon-reload" {
		t.Errorf("with no units only systemd's view is reloaded: %q", r.Calls)
	}
}

func TestParseUnitState(t *testing.T) {
	now := 1000 * time.Second
	for _, c := range []struct {
		name, show string
		want       UnitState
		state      string
	}{
		{"running", "ActiveState=active\nSubState=running\nNRestarts=2\nExecMainStartTimestampMonotonic=940000000\nMainPID=123\nDescription=dk8s kubelet v1.37.2\n",
			UnitState{Active: "active", Sub: "running", Restarts: 2, Uptime: 60 * time.Second, Version: "v1.37.2"}, "running"},
		{"waiting to restart", "ActiveState=activating\nSubState=auto-restart\nNRestarts=5\nExecMainStartTimestampMonotonic=940000000\nMainPID=0\nDescription=dk8s containerd 1.6.20\n",
			UnitState{Active: "activating", Sub: "auto-restart", Restarts: 5, Version: "1.6.20"}, "restarting"},
		{"stopped, a unit from before versions", "ActiveState=inactive\nSubState=dead\nNRestarts=0\nExecMainStartTimestampMonotonic=0\nMainPID=0\nDescription=dk8s kubelet\n",
			UnitState{Active: "inactive", Sub: "dead"}, "stopped"},
		{"failed", "ActiveState=failed\nSubState=failed\nNRestarts=\nMainPID=0\n",
			UnitState{Active: "failed", Sub: "failed"}, "failed"},
	} {
		comp := "kubelet"
		if strings.Contains(c.show, "containerd") {
			comp = "containerd"
		}
		got := parseUnitState(comp, c.show, now)
		if got != c.want || got.State() != c.state {
			t.Errorf("%s: got %+v (%s), want %+v (%s)", c.name, got, got.State(), c.want, c.state)
		}
	}
}

func TestUnitsState(t *testing.T) {
	r := &hosttest.Runner{Answer: func(cmd string, _ int) ([]byte, error) {
		if cmd != "systemctl show --property=ActiveState,SubState,NRestarts,ExecMainStartTimestampMonotonic,MainPID,Description dk8s-kubelet.service" {
			return nil, errors.New("unexpected command " + cmd)
		}
		return []byte("ActiveState=active\nSubState=running\nNRestarts=0\nExecMainStartTimestampMonotonic=1\nMainPID=7\nDescription=dk8s kubelet v1.37.2\n"), nil
	}}
	s, err := Units{Runner: r}.State(context.Background(), "kubelet")
	if err != nil || !s.Running() || s.Version != "v1.37.2" || s.Uptime <= 0 {
		t.Fatalf("State = %+v, %v", s, err)
	}
}
