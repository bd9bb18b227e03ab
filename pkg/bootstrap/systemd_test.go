package bootstrap

import (
	"strings"
	"testing"
)

func TestSystemdUnit(t *testing.T) {
	u := SystemdUnit("kubelet", []string{"/var/lib/dk8s/bin/kubelet", "--config=/var/lib/dk8s/kubelet/config.yaml", "--node-labels=a=b c"}, []string{"dk8s-containerd.service"})
	for _, want := range []string{
		"Restart=always",
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
	if c := SystemdUnit("containerd", []string{"/usr/bin/containerd"}, nil); !strings.Contains(c, "KillMode=process") || !strings.Contains(c, "Delegate=yes") {
		t.Errorf("the runtime's unit should keep pods' shims on restart and own its cgroups:\n%s", c)
	}
}
