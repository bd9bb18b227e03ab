package bootstrap

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadStartConfig(t *testing.T) {
	p := writeTemp(t, "start.yaml", `nodeName: node-7
advertiseAddress: 192.0.2.7
serviceCIDR: 10.100.0.0/16
podCIDR: 10.200.0.0/16
extraArgs:
  kube-apiserver:
    v: "4"
  etcd:
    quota-backend-bytes: "4294967296"
`)
	var cfg Config
	if err := LoadStartConfig(p, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.NodeName != "node-7" || cfg.AdvertiseAddress.String() != "192.0.2.7" || cfg.ServiceCIDR != "10.100.0.0/16" || cfg.PodCIDR != "10.200.0.0/16" ||
		cfg.ExtraArgs["kube-apiserver"]["v"] != "4" || cfg.ExtraArgs["etcd"]["quota-backend-bytes"] != "4294967296" {
		t.Errorf("read %+v", cfg)
	}

	for _, c := range []struct {
		name, content, want string
	}{
		// A misspelt key is refused with its line, not ignored: ignoring it
		// would start a cluster without the flags the user asked for.
		{"a misspelt key", "extraArg:\n  kube-scheduler: {v: '2'}\n", "line 1: field extraArg not found"},
		{"a misspelt key further down", "nodeName: n\nserviceCidr: 10.0.0.0/16\n", "line 2: field serviceCidr not found"},
		{"a misspelt key inside another", "extraArgs:\n  kube-scheduler: {v: '2'}\nnodename: n\n", "line 3: field nodename not found"},
		{"an address that is no address", "advertiseAddress: 300.1.1.1\n", `advertiseAddress "300.1.1.1" is not an IP address`},
		{"flags of the wrong shape", "extraArgs:\n  kube-apiserver: [v=4]\n", "line 2: cannot unmarshal"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := writeTemp(t, "start.yaml", c.content)
			err := LoadStartConfig(p, &Config{})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), p+": ") {
				t.Errorf("error %v, want one naming %s and saying %q", err, p, c.want)
			}
		})
	}

	missing := filepath.Join(t.TempDir(), "start.yaml")
	if err := LoadStartConfig(missing, &Config{}); err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file: error %v, want one naming %s", err, missing)
	}
}
