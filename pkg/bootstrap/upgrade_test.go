package bootstrap

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"

	"github.com/dk8s/dk8s/pkg/images"
)

func release(version, etcd string) *images.Release {
	return &images.Release{Kubernetes: version, Images: []images.Image{{Component: "etcd", Name: "registry.k8s.io/etcd:" + etcd}}}
}

func TestCheckUpgradeFollowsTheSkewPolicy(t *testing.T) {
	for _, tc := range []struct {
		from, fromEtcd string
		to             *images.Release
		refused        string // a part of the refusal; "" when allowed
	}{
		{"", "", release("v1.37.2", "3.7.0-0"), ""},                            // a new cluster
		{"v1.37.2", "3.7.0-0", release("v1.37.2", "3.7.0-0"), ""},              // a rerun
		{"v1.36.3", "3.7.0-0", release("v1.37.2", "3.7.0-0"), ""},              // one minor up
		{"v1.37.1", "3.7.0-0", release("v1.37.2", "3.7.0-0"), ""},              // a patch
		{"v1.37.2", "3.7.0-0", release("v1.37.1", "3.7.0-0"), ""},              // a patch back
		{"v1.35.4", "3.6.5-0", release("v1.37.2", "3.7.0-0"), "v1.36.x first"}, // two minors
		{"v1.37.2", "3.7.0-0", release("v1.36.3", "3.7.0-0"), "does not downgrade"},
		{"v1.36.3", "3.7.0-0", release("v1.37.2", "3.6.5-0"), "etcd cannot move to an older minor"},
		// A rerun of the recorded version after an upgrade that stopped
		// with the newer etcd already running.
		{"v1.36.3", "3.7.0-0", release("v1.36.3", "3.6.5-0"), "etcd cannot move to an older minor"},
	} {
		err := CheckUpgrade(tc.from, tc.fromEtcd, tc.to)
		switch {
		case tc.refused == "" && err != nil:
			t.Errorf("%s -> %s: refused: %v", tc.from, tc.to.Kubernetes, err)
		case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)):
			t.Errorf("%s -> %s: want a refusal saying %q, got %v", tc.from, tc.to.Kubernetes, tc.refused, err)
		}
	}
}

func TestAddonPatchLeavesTheImageAloneOutsideAnUpgrade(t *testing.T) {
	if got := string(addonPatch("kube-proxy", "", "sha256:abc", ProfileDefault)); strings.Contains(got, "image\"") || !strings.Contains(got, `"io.dk8s/image-id":"sha256:abc"`) {
		t.Errorf("patch %s should set the image-ID annotation alone", got)
	}
}

func TestAddonPatchSetsTheImageByContainerName(t *testing.T) {
	ds := kubeProxy(Config{PodCIDR: DefaultPodCIDR}, "registry.k8s.io/kube-proxy:v1.36.3", "sha256:old")
	got := applyAddonPatch(t, ds, addonPatch("kube-proxy", "registry.k8s.io/kube-proxy:v1.37.2", "sha256:abc", ProfileDefault))
	c := got.Spec.Template.Spec.Containers[0]
	if c.Image != "registry.k8s.io/kube-proxy:v1.37.2" || got.Spec.Template.Annotations[imageIDAnnotation] != "sha256:abc" {
		t.Errorf("after the patch: image %s, annotation %q", c.Image, got.Spec.Template.Annotations[imageIDAnnotation])
	}
	if len(c.Command) != len(ds.Spec.Template.Spec.Containers[0].Command) {
		t.Errorf("the patch should leave the command alone: %v", c.Command)
	}
}

// A cluster whose profile changes gets its add-ons' environment changed by
// the same patch, both ways, and keeps the variables dk8s set otherwise.
func TestAddonPatchFollowsTheProfile(t *testing.T) {
	ds := kubeProxy(Config{PodCIDR: DefaultPodCIDR}, "registry.k8s.io/kube-proxy:v1.37.2", "sha256:abc")
	envOf := func(ds *appsv1.DaemonSet) map[string]string {
		m := map[string]string{}
		for _, e := range ds.Spec.Template.Spec.Containers[0].Env {
			m[e.Name] = e.Value
		}
		return m
	}
	small := applyAddonPatch(t, ds, addonPatch("kube-proxy", "", "sha256:abc", ProfileSmall))
	if env := envOf(small); env["GOGC"] != smallGOGC || len(env) != 2 {
		t.Errorf("small: env %v, want GOGC=%s beside NODE_NAME", env, smallGOGC)
	}
	// A control plane that joined the cluster leaves them alone.
	if env := envOf(applyAddonPatch(t, small, addonPatch("kube-proxy", "", "sha256:abc", ""))); env["GOGC"] != smallGOGC {
		t.Errorf("a patch without a profile changed the env: %v", env)
	}
	back := applyAddonPatch(t, small, addonPatch("kube-proxy", "", "sha256:abc", ProfileDefault))
	if env := envOf(back); len(env) != 1 || back.Spec.Template.Spec.Containers[0].Env[0].Name != "NODE_NAME" {
		t.Errorf("back to default: env %v, want NODE_NAME alone", env)
	}
	// Nothing changes for a cluster that kept its profile: no rollout.
	again := applyAddonPatch(t, ds, addonPatch("kube-proxy", "", "sha256:abc", ProfileDefault))
	if !reflect.DeepEqual(again.Spec.Template, ds.Spec.Template) {
		t.Errorf("a patch of the same profile changed the pod template:\n%+v", again.Spec.Template)
	}
}

// applyAddonPatch applies a strategic merge patch to ds as the apiserver
// does.
func applyAddonPatch(t *testing.T, ds *appsv1.DaemonSet, patch []byte) *appsv1.DaemonSet {
	t.Helper()
	orig, err := json.Marshal(ds)
	if err != nil {
		t.Fatal(err)
	}
	out, err := strategicpatch.StrategicMergePatch(orig, patch, appsv1.DaemonSet{})
	if err != nil {
		t.Fatalf("patch %s: %v", patch, err)
	}
	var got appsv1.DaemonSet
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	return &got
}
