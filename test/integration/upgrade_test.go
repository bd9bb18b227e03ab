package integration

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dk8s/dk8s/pkg/images"
)

// olderVersion is the release the harness builds beside the default one for
// the upgrade tests (test/harness/older.sh).
const olderVersion = "v1.36.3"

// twoReleaseLock writes a lock holding the harness's default release and
// olderVersion, whose control-plane images and kube-proxy are that version's
// and whose etcd, CoreDNS and pause are the default's (the harness builds
// no others). Its digests come from the flat mirror through 'dk8s images
// lock', as a user would record them.
func twoReleaseLock(t *testing.T) string {
	t.Helper()
	lock := readTestLock(t)
	def, err := lock.Release("")
	if err != nil {
		t.Fatal(err)
	}
	older := images.Release{Kubernetes: olderVersion}
	for _, img := range def.Images {
		if strings.HasSuffix(img.Name, ":"+def.Kubernetes) {
			img.Name = strings.TrimSuffix(img.Name, def.Kubernetes) + olderVersion
			img.Aliases, img.Digest, img.Platforms = nil, "", nil
		}
		older.Images = append(older.Images, img)
	}
	lock.Releases = []images.Release{*def, older}
	path := writeLock(t, lock)
	if r := dk8s(t, nil, "images", "lock", "--lock", path, "--kubernetes-version", olderVersion,
		"--from", flatMirror, "--platform", "linux/amd64", "--file", path); r.code != 0 {
		t.Fatalf("recording %s's digests: %s", olderVersion, r)
	}
	return path
}

// An upgrade rolls every part, in kubeadm's order, and keeps the cluster's
// objects; the skew policy is checked before anything changes.
func TestUpgrade(t *testing.T) {
	engine, _ := harness(t)
	lock := twoReleaseLock(t)
	cache := filepath.Dir(testLock)
	c := newCluster(t)
	c.node = true
	t.Cleanup(func() { c.purge() })
	for _, v := range []string{olderVersion, ""} {
		args := []string{"pull", "--lock", lock, "--mirror", flatMirror}
		if v != "" {
			args = append(args, "--kubernetes-version", v)
		}
		if r := dk8s(t, nil, args...); r.code != 0 {
			t.Fatalf("pulling %s: %s", v, r)
		}
	}
	c.nodeArgs = []string{"--lock", lock, "--kubernetes-version", olderVersion, "--kubelet-binary", filepath.Join(cache, "bin-"+olderVersion, "kubelet")}
	c.start()
	c.writeMarker("before-upgrade")
	if out := c.mustKubectl("get", "nodes", "--no-headers"); !strings.Contains(out, olderVersion) {
		t.Fatalf("the node should run kubelet %s first:\n%s", olderVersion, out)
	}

	c.nodeArgs = []string{"--lock", lock, "--kubelet-binary", filepath.Join(cache, "kubelet")}
	r := c.start()
	if !strings.Contains(r.stderr, "upgrading from Kubernetes "+olderVersion) {
		t.Errorf("start should say it upgrades:\n%s", r)
	}
	// kubeadm's order: etcd, apiserver, controller-manager, scheduler,
	// kubelet, add-ons.
	last := -1
	for _, step := range []string{"dk8s-etcd", "dk8s-apiserver replaced", "dk8s-controller-manager replaced", "dk8s-scheduler replaced", "dk8s-kubelet replaced", "flannel, kube-proxy and CoreDNS are running"} {
		i := strings.Index(r.stderr, step)
		if i < 0 || i < last {
			t.Errorf("%q should come after the step before it:\n%s", step, r.stderr)
		}
		last = i
	}
	c.assertMarker("before-upgrade")

	newVersion := ""
	ps := c.waitHealthy(2 * time.Minute)
	for _, comp := range []string{"kube-apiserver ", "kube-controller-manager ", "kube-scheduler ", "kubelet "} {
		line := lineWith(ps.stdout, comp)
		// COMPONENT SUPERVISOR NAME STATE HEALTH RESTARTS VERSION ...
		f := strings.Fields(line)
		if len(f) < 7 || f[6] == olderVersion {
			t.Errorf("%s should run the new version:\n%s", comp, ps.stdout)
			continue
		}
		if newVersion == "" {
			newVersion = f[6]
		}
	}
	if !waitFor(2*time.Minute, func() bool {
		out, _ := c.kubectl("get", "nodes", "--no-headers")
		return strings.Contains(out, " Ready ") && strings.Contains(out, newVersion)
	}) {
		out, _ := c.kubectl("get", "nodes", "-o", "wide")
		t.Errorf("the node should be Ready with kubelet %s:\n%s", newVersion, out)
	}
	if img := c.mustKubectl("-n", "kube-system", "get", "daemonset", "kube-proxy", "-o", "jsonpath={.spec.template.spec.containers[0].image}"); !strings.HasSuffix(img, ":"+newVersion) {
		t.Errorf("kube-proxy should be rolled to %s, runs %s", newVersion, img)
	}
	c.mustKubectl("-n", "kube-system", "rollout", "status", "daemonset/kube-proxy", "--timeout=3m")
	// start returned once the add-ons had rolled: no pod of the older
	// kube-proxy is left (one terminating may still be listed briefly).
	var imgs string
	if !waitFor(time.Minute, func() bool {
		imgs = c.mustKubectl("-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-proxy", "-o", "jsonpath={.items[*].spec.containers[0].image}")
		return !strings.Contains(imgs, olderVersion)
	}) {
		t.Errorf("a kube-proxy pod still runs %s: %s", olderVersion, imgs)
	}

	// Back to the older minor: refused before anything changes.
	before := ids(t, engine)
	c.nodeArgs = []string{"--lock", lock, "--kubernetes-version", olderVersion, "--kubelet-binary", filepath.Join(cache, "bin-"+olderVersion, "kubelet")}
	back := c.run(append([]string{"start", "--timeout", "3m", "--mirror", pathMirror}, c.nodeArgs...)...)
	if back.code == 0 || !strings.Contains(back.stderr, "does not downgrade") {
		t.Errorf("a downgrade should be refused:\n%s", back)
	}
	if after := ids(t, engine); !equalMaps(before, after) {
		t.Errorf("a refused downgrade changed containers: %v -> %v", before, after)
	}
	c.assertMarker("before-upgrade")
}
