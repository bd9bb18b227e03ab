package doctor

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// KubeletConfig is the part of a KubeletConfiguration doctor reads.
type KubeletConfig struct {
	CgroupDriver string `yaml:"cgroupDriver"`
	ResolvConf   string `yaml:"resolvConf"`
	FailSwapOn   *bool  `yaml:"failSwapOn"`
}

// ParseKubeletConfig reads a KubeletConfiguration.
func ParseKubeletConfig(data []byte) (KubeletConfig, error) {
	var k KubeletConfig
	err := yaml.Unmarshal(data, &k)
	return k, err
}

// RuntimeConfig is the part of containerd's configuration doctor reads.
type RuntimeConfig struct {
	DisabledPlugins []string
	SandboxImage    string
	SystemdCgroup   bool
	// Restart is the command that restarts the runtime, by its supervisor.
	Restart string
}

// ParseRuntimeConfig reads the keys doctor needs from containerd's TOML
// configuration, line by line: dk8s writes one key a line, and a user
// editing it keeps to that. The sandbox image is sandbox_image (config
// version 2) or the pinned sandbox (version 3).
func ParseRuntimeConfig(data string) RuntimeConfig {
	var rc RuntimeConfig
	section := ""
	for _, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case k == "disabled_plugins" && section == "":
			v = strings.Trim(v, "[]")
			for _, p := range strings.Split(v, ",") {
				if p = strings.Trim(strings.TrimSpace(p), `"'`); p != "" {
					rc.DisabledPlugins = append(rc.DisabledPlugins, p)
				}
			}
		case k == "sandbox_image", k == "sandbox" && strings.Contains(section, "pinned_images"):
			if s, err := strconv.Unquote(v); err == nil {
				rc.SandboxImage = s
			}
		case k == "SystemdCgroup":
			rc.SystemdCgroup = v == "true"
		}
	}
	return rc
}

// criDisabled tells whether the configuration turns the CRI plugin off.
func (rc RuntimeConfig) criDisabled() string {
	for _, p := range rc.DisabledPlugins {
		if p == "cri" || strings.HasPrefix(p, "io.containerd.grpc.v1.cri") || strings.HasPrefix(p, "io.containerd.cri.") {
			return p
		}
	}
	return ""
}

// rewrite is the fix for a runtime configuration changed by hand: start
// writes back what dk8s planned, and the runtime loads it on a restart.
func (rc RuntimeConfig) rewrite(path string) string {
	return fmt.Sprintf("dk8s start (writes %s back as dk8s planned it), then %s", path, rc.Restart)
}

// checkCRI: since Kubernetes 1.24 kubelet talks to the runtime only
// through CRI; a runtime without it runs no pod.
func checkCRI(path string, rc RuntimeConfig, plugins string, pluginsErr error) []Finding {
	if p := rc.criDisabled(); p != "" {
		return []Finding{{CheckCRI, Problem, fmt.Sprintf("%s disables containerd's CRI plugin (disabled_plugins has %q): kubelet cannot run pods", path, p),
			fmt.Sprintf("remove %q from disabled_plugins; %s", p, rc.rewrite(path))}}
	}
	if pluginsErr != nil {
		return []Finding{{CheckCRI, Problem, fmt.Sprintf("the runtime's socket does not answer (%v): kubelet cannot run pods", firstLine(pluginsErr.Error())),
			rc.Restart + "; if it stops again, 'dk8s logs containerd' says why"}}
	}
	for _, line := range strings.Split(plugins, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "io.containerd.grpc.v1" && f[1] == "cri" {
			if st := f[len(f)-1]; st != "ok" {
				return []Finding{{CheckCRI, Problem, "containerd's CRI plugin is " + st + ": kubelet cannot run pods", "'dk8s logs containerd' says why it failed; then " + rc.Restart}}
			}
			return nil
		}
	}
	return []Finding{{CheckCRI, Problem, "the runtime answers but has no CRI plugin loaded (it runs a configuration without it): kubelet cannot run pods", rc.rewrite(path)}}
}

// checkSandbox: the sandbox (pause) image comes from the runtime's
// configuration, not from kubelet; one that differs from the image dk8s
// pulled, or that the runtime lacks, leaves every pod waiting for a pull
// behind the firewall.
func checkSandbox(path string, rc RuntimeConfig, pause string, present, runtimeAnswers bool) []Finding {
	switch {
	case pause == "":
		return nil // no lock to compare with
	case rc.SandboxImage == "":
		return []Finding{{CheckSandbox, Problem, fmt.Sprintf("%s names no sandbox image, so containerd uses its built-in default from registry.k8s.io instead of %s", path, pause), rc.rewrite(path)}}
	case rc.SandboxImage != pause:
		return []Finding{{CheckSandbox, Problem, fmt.Sprintf("the runtime's sandbox image is %s, but the release's pause image is %s (what dk8s pulled): pods wait on a pull of the other one", rc.SandboxImage, pause), rc.rewrite(path)}}
	case runtimeAnswers && !present:
		return []Finding{{CheckSandbox, Problem, fmt.Sprintf("the runtime does not hold its sandbox image %s: no pod can start without it", pause),
			"dk8s pull, then dk8s start (imports it into the runtime)"}}
	}
	return nil
}

// checkCgroup: kubelet and the runtime must put pods' cgroups through the
// same driver, or pods fail to start (kubernetes #43805).
func checkCgroup(kubeletPath string, k KubeletConfig, runtimePath string, rc RuntimeConfig) []Finding {
	kubelet := k.CgroupDriver
	if kubelet == "" {
		kubelet = "cgroupfs" // kubelet's default
	}
	runtime := "cgroupfs"
	if rc.SystemdCgroup {
		runtime = "systemd"
	}
	if kubelet == runtime {
		return nil
	}
	return []Finding{{CheckCgroup, Problem, fmt.Sprintf("kubelet's cgroupDriver is %s (%s) but the runtime's is %s (SystemdCgroup = %t in %s): pods fail to start",
		kubelet, kubeletPath, runtime, rc.SystemdCgroup, runtimePath), "make them agree: " + rc.rewrite(runtimePath) + ", and restart kubelet"}}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
