package bootstrap

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/dk8s/dk8s"
	"github.com/dk8s/dk8s/pkg/addons"
	"github.com/dk8s/dk8s/pkg/host"
	"github.com/dk8s/dk8s/pkg/images"
)

func planProfile(t *testing.T, p Profile) *Config {
	t.Helper()
	return &Config{ClusterName: "dk8s", Dir: "/var/lib/dk8s", NodeName: "node-1", AdvertiseAddress: net.ParseIP("192.0.2.10"),
		ServiceCIDR: DefaultServiceCIDR, PodCIDR: DefaultPodCIDR, Profile: p}
}

// The small profile sets GOGC on every part dk8s runs: the control plane
// and dk8s's own containers, the node's agents (containers or units) and
// the add-ons. The default sets nothing, so that a cluster made before
// profiles is planned exactly as before and a rerun replaces nothing.
func TestProfileReachesEveryGoProgram(t *testing.T) {
	lock, err := images.ParseLock(dk8s.DefaultLock)
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := lock.Release("")
	for _, tc := range []struct {
		profile Profile
		want    []string
	}{
		{ProfileSmall, []string{"GOGC=" + smallGOGC}},
		{ProfileDefault, nil},
	} {
		cfg := planProfile(t, tc.profile)
		specs, err := Plan(*cfg, rel)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range specs {
			if !slices.Equal(s.Env, tc.want) {
				t.Errorf("%s: %s has env %v, want %v", tc.profile, s.Name, s.Env, tc.want)
			}
		}
		if s := agentSpec(*cfg, "kubelet", "pause", "/dk8s", []string{"kubelet"}, nil, "", ""); !slices.Equal(s.Env, tc.want) {
			t.Errorf("%s: kubelet's container has env %v, want %v", tc.profile, s.Env, tc.want)
		}
		unit := host.SystemdUnit("kubelet", "", []string{"kubelet"}, cfg.Profile.env(), nil)
		if got := strings.Contains(unit, "Environment=GOGC="+smallGOGC+"\n"); got != (tc.profile == ProfileSmall) {
			t.Errorf("%s: kubelet's unit:\n%s", tc.profile, unit)
		}
		ac, err := addonConfig(*cfg, rel, "10.96.0.10", nil, false)
		if err != nil {
			t.Fatal(err)
		}
		cs := fake.NewSimpleClientset()
		if err := addons.Ensure(context.Background(), cs, ac); err != nil {
			t.Fatal(err)
		}
		proxy, _ := cs.AppsV1().DaemonSets(addonNS).Get(context.Background(), addons.KubeProxyDaemonSet, metav1.GetOptions{})
		flannel, _ := cs.AppsV1().DaemonSets(addonNS).Get(context.Background(), addons.FlannelDaemonSet, metav1.GetOptions{})
		dns, _ := cs.AppsV1().Deployments(addonNS).Get(context.Background(), addons.CoreDNSDeployment, metav1.GetOptions{})
		for name, env := range map[string][]string{"kube-proxy": envNames(proxy.Spec.Template.Spec.Containers[0].Env),
			"flannel": envNames(flannel.Spec.Template.Spec.Containers[0].Env), "coredns": envNames(dns.Spec.Template.Spec.Containers[0].Env)} {
			if got := slices.Contains(env, "GOGC="+smallGOGC); got != (tc.profile == ProfileSmall) {
				t.Errorf("%s: %s's env %v", tc.profile, name, env)
			}
		}
	}
}

func TestProfileIsKeptInTheMarker(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{ClusterName: "dk8s", Dir: dir, NodeName: "n", Profile: ProfileSmall}
	if err := writeSettings(dir, settingsOf(cfg)); err != nil {
		t.Fatal(err)
	}
	again := Config{ClusterName: "dk8s", Dir: dir}
	if err := again.resolveKept(); err != nil || again.Profile != ProfileSmall {
		t.Errorf("a rerun without --profile: %q (%v), want the kept small", again.Profile, err)
	}
	back := Config{ClusterName: "dk8s", Dir: dir, Profile: ProfileDefault}
	if err := back.resolveKept(); err != nil || back.Profile != ProfileDefault {
		t.Errorf("--profile default over a kept small: %q (%v)", back.Profile, err)
	}
	if s := settingsOf(back); s.Profile != "" {
		t.Errorf("the default profile is written as %q, want nothing", s.Profile)
	}
	if fresh := (Config{ClusterName: "dk8s", Dir: t.TempDir()}); fresh.resolveKept() != nil || fresh.Profile != ProfileDefault {
		t.Errorf("a new cluster's profile is %q, want default", fresh.Profile)
	}
}

func TestParseProfileSaysWhatThereIs(t *testing.T) {
	if p, err := ParseProfile("small"); err != nil || p != ProfileSmall {
		t.Errorf("small: %q %v", p, err)
	}
	if _, err := ParseProfile("tiny"); err == nil || !strings.Contains(err.Error(), "default, small") {
		t.Errorf("tiny: %v, want the profiles named", err)
	}
}

func envNames(env []corev1.EnvVar) []string {
	var out []string
	for _, e := range env {
		out = append(out, e.Name+"="+e.Value)
	}
	return out
}
