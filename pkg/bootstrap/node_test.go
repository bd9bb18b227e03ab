package bootstrap

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/dk8s/dk8s"
	"github.com/dk8s/dk8s/pkg/addons"
	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/host"
	"github.com/dk8s/dk8s/pkg/images"
	"github.com/dk8s/dk8s/pkg/mirror"
)

func defaultRelease(t *testing.T) *images.Release {
	t.Helper()
	lock, err := images.ParseLock(dk8s.DefaultLock)
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := lock.Release("")
	return rel
}

func nodeConfig(t *testing.T) Config {
	return Config{ClusterName: "dk8s", Dir: "/var/lib/dk8s", NodeName: "node-1", AdvertiseAddress: net.ParseIP("192.0.2.10"),
		ServiceCIDR: DefaultServiceCIDR, PodCIDR: DefaultPodCIDR, Node: true}
}

// kubelet's command line is planned once: its container and its systemd
// unit run the same one; the runtime keeps the service range local and
// moves into its own cgroup in both.
func TestPlanNodeFeedsContainerAndUnitFromOneCommand(t *testing.T) {
	rel := defaultRelease(t)
	tools := &nodeTools{Tools: host.Tools{Containerd: "/usr/bin/containerd", Ctr: "/usr/bin/ctr", CNIBin: "/usr/lib/cni"}, kubeletVersion: "v1.37.2"}
	np, err := planNode(context.Background(), nodeConfig(t), rel, tools, "/var/lib/dk8s/bin/dk8s", "/var/lib/dk8s/bin/kubelet", false, nodeIdentity{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(np.kubeletSpec.Args, np.kubelet) {
		t.Errorf("kubelet's container runs %v, the plan says %v", np.kubeletSpec.Args, np.kubelet)
	}
	if unit := np.units[1].Text; !strings.Contains(unit, strings.Join(np.kubelet, " ")) {
		t.Errorf("kubelet's unit should run the planned command %v:\n%s", np.kubelet, unit)
	}
	entry := strings.Join(np.runtime.Entrypoint, " ")
	if !strings.Contains(entry, "host-exec --service-cidr 10.96.0.0/12 --cgroup dk8s/containerd --path-first /usr/bin --") {
		t.Errorf("the runtime's container should prepare the host first: %s", entry)
	}
	// The agents' supervisors bind the shim alone, privately: a bind that
	// needs the host's root shared would not start after the reboot of a
	// host whose init does not make it so.
	for _, spec := range []containers.Spec{np.runtime, np.kubeletSpec} {
		if want := []containers.Mount{{Source: "/var/lib/dk8s/bin/dk8s", Target: shimTarget, ReadOnly: true}}; !slices.Equal(spec.Mounts, want) {
			t.Errorf("%s binds %+v, want the shim alone", spec.Name, spec.Mounts)
		}
	}
	if !strings.Contains(np.units[0].Text, "--service-cidr 10.96.0.0/12 --path-first /usr/bin --") {
		t.Errorf("the runtime's unit should keep the service range local too, and find its shim beside it:\n%s", np.units[0].Text)
	}
	if np.dns != "10.96.0.10" {
		t.Errorf("kube-dns at %s, want the range's .10", np.dns)
	}
	if np.runtime.Labels["io.dk8s.version"] == "" || np.kubeletSpec.Labels["io.dk8s.version"] != "v1.37.2" {
		t.Errorf("the agents' versions should be labelled: %v %v", np.runtime.Labels, np.kubeletSpec.Labels)
	}
}

// With mirrors named, the runtime resolves pods' images of both registries
// the lock uses through them: flannel's, on docker.io, too.
func TestPlanNodeSendsBothRegistriesThroughTheMirrors(t *testing.T) {
	cfg := nodeConfig(t)
	tools := &nodeTools{Tools: host.Tools{Containerd: "/usr/bin/containerd", Ctr: "/usr/bin/ctr", CNIBin: "/usr/lib/cni"}, kubeletVersion: "v1.37.2"}
	var err error
	if cfg.Mirrors, err = mirror.ParseList("aliyun,daocloud"); err != nil {
		t.Fatal(err)
	}
	np, err := planNode(context.Background(), cfg, defaultRelease(t), tools, "/var/lib/dk8s/bin/dk8s", "/var/lib/dk8s/bin/kubelet", false, nodeIdentity{})
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"/var/lib/dk8s/containerd/certs.d/registry.k8s.io/hosts.toml": `[host."https://k8s.m.daocloud.io"]`,
		"/var/lib/dk8s/containerd/certs.d/docker.io/hosts.toml":       `[host."https://docker.m.daocloud.io"]`,
	} {
		if !strings.Contains(np.files[file], want) {
			t.Errorf("%s lacks %s:\n%s", file, want, np.files[file])
		}
	}
}

func TestEnsureAddonsKeepsAUsersImageOutsideAnUpgrade(t *testing.T) {
	ctx := context.Background()
	rel := defaultRelease(t)
	cs := fake.NewSimpleClientset()
	cfg := nodeConfig(t)
	proxy, _ := rel.Image("kube-proxy")
	ids := map[string]string{proxy.Name: "sha256:1"}
	if err := ensureAddons(ctx, cs, cfg, rel, "10.96.0.10", ids, false); err != nil {
		t.Fatal(err)
	}
	ds, err := cs.AppsV1().DaemonSets(addonNS).Get(ctx, "kube-proxy", metav1.GetOptions{})
	if err != nil || ds.Spec.Template.Spec.Containers[0].Image != proxy.Name || ds.Spec.Template.Annotations["io.dk8s/image-id"] != "sha256:1" {
		t.Fatalf("kube-proxy: %+v, %v", ds, err)
	}
	// The pod network reaches the apiserver at its address (the service
	// IP is kube-proxy's to make routable) and spans the pod range.
	net, err := cs.AppsV1().DaemonSets(addonNS).Get(ctx, addons.FlannelDaemonSet, metav1.GetOptions{})
	if err != nil || !slices.Contains(net.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: "KUBERNETES_SERVICE_HOST", Value: "192.0.2.10"}) {
		t.Fatalf("flannel: %+v, %v", net, err)
	}
	conf, err := cs.CoreV1().ConfigMaps(addonNS).Get(ctx, "kube-flannel-cfg", metav1.GetOptions{})
	if err != nil || !strings.Contains(conf.Data["net-conf.json"], `"Network": "10.244.0.0/16"`) || !strings.Contains(conf.Data["net-conf.json"], "vxlan") {
		t.Fatalf("flannel's net-conf: %+v, %v", conf, err)
	}
	svc, err := cs.CoreV1().Services(addonNS).Get(ctx, "kube-dns", metav1.GetOptions{})
	if err != nil || svc.Spec.ClusterIP != "10.96.0.10" {
		t.Fatalf("kube-dns: %+v, %v", svc, err)
	}
	ds.Spec.Template.Spec.Containers[0].Image = "registry.example/kube-proxy:mine"
	cs.AppsV1().DaemonSets(addonNS).Update(ctx, ds, metav1.UpdateOptions{})
	if err := ensureAddons(ctx, cs, cfg, rel, "10.96.0.10", ids, false); err != nil {
		t.Fatal(err)
	}
	ds, _ = cs.AppsV1().DaemonSets(addonNS).Get(ctx, "kube-proxy", metav1.GetOptions{})
	if got := ds.Spec.Template.Spec.Containers[0].Image; got != "registry.example/kube-proxy:mine" {
		t.Errorf("a rerun replaced the user's image with %s", got)
	}
	if err := ensureAddons(ctx, cs, cfg, rel, "10.96.0.10", ids, true); err != nil {
		t.Fatal(err)
	}
	ds, _ = cs.AppsV1().DaemonSets(addonNS).Get(ctx, "kube-proxy", metav1.GetOptions{})
	if got := ds.Spec.Template.Spec.Containers[0].Image; got != proxy.Name {
		t.Errorf("an upgrade should roll kube-proxy to %s, runs %s", proxy.Name, got)
	}
}

func TestWaitNodeReady(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewSimpleClientset()
	if err := waitNodeReady(ctx, cs, "node-1", 1500*time.Millisecond); err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Errorf("got %v", err)
	}
	cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: corev1.ConditionFalse, Reason: "KubeletNotReady", Message: "CNI not ready"}}}}, metav1.CreateOptions{})
	if err := waitNodeReady(ctx, cs, "node-1", 1500*time.Millisecond); err == nil || !strings.Contains(err.Error(), "CNI not ready") {
		t.Errorf("the last reason should be named: %v", err)
	}
	n, _ := cs.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
	n.Status.Conditions[0].Status = corev1.ConditionTrue
	cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
	if err := waitNodeReady(ctx, cs, "node-1", 3*time.Second); err != nil {
		t.Errorf("Ready: %v", err)
	}
}
