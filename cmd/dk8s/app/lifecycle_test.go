package app

import (
	"slices"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/containers/containerstest"
)

// wholeCluster is a control plane in dir, its node's kubelet, and a
// container that is none of dk8s's.
func wholeCluster(dir string) *containerstest.Engine {
	return fakeHost(
		fakeContainer("dk8s-etcd", "registry.k8s.io/etcd:3.6.5-0", dir, "running"),
		fakeContainer("dk8s-apiserver", "registry.k8s.io/kube-apiserver:v1.36.2", dir, "running"),
		fakeContainer("dk8s-controller-manager", "registry.k8s.io/kube-controller-manager:v1.36.2", dir, "running"),
		fakeContainer("dk8s-scheduler", "registry.k8s.io/kube-scheduler:v1.36.2", dir, "exited"),
		fakeContainer("dk8s-kubelet", "registry.k8s.io/pause:3.10", dir, "running"),
		&containers.Container{Name: "web", Image: "nginx", State: "running", Running: true},
	)
}

func TestStopStopsInReverseStartOrder(t *testing.T) {
	refuseOnANode(t)
	dir := t.TempDir()
	fake := wholeCluster(dir)
	stdout, stderr, err := runFake(t, fake, "stop", "--dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"stop dk8s-kubelet", "stop dk8s-scheduler", "stop dk8s-controller-manager", "stop dk8s-apiserver", "stop dk8s-etcd"}
	if got := fake.Mutations("create", "start", "stop", "remove", "pull", "tag", "untag"); !slices.Equal(got, want) {
		t.Errorf("stop called %q, want %q", got, want)
	}
	wantErr := "stopped dk8s-kubelet\nstopped dk8s-scheduler\nstopped dk8s-controller-manager\nstopped dk8s-apiserver\nstopped dk8s-etcd\n"
	if stderr != wantErr || stdout != "" {
		t.Errorf("stop said %q, want %q; output %q", stderr, wantErr, stdout)
	}
	if !fake.Containers["web"].Running {
		t.Error("stop stopped a container that is not dk8s's")
	}
}

func TestResetRemovesThisDirsContainersOnly(t *testing.T) {
	refuseOnANode(t)
	dir, other := t.TempDir(), t.TempDir()
	fake := wholeCluster(dir)
	// Of the same cluster name, but kept in another directory: not this
	// cluster's to remove.
	fake.Containers["dk8s-old"] = fakeContainer("dk8s-old", "busybox", other, "exited")
	// Of this cluster, and no component: reset removes it too.
	fake.Containers["dk8s-extra"] = fakeContainer("dk8s-extra", "busybox", dir, "running")

	stdout, stderr, err := runFake(t, fake, "reset", "--dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, n := range []string{"dk8s-kubelet", "dk8s-scheduler", "dk8s-controller-manager", "dk8s-apiserver", "dk8s-etcd", "dk8s-extra"} {
		want = append(want, "stop "+n, "remove "+n)
	}
	if got := fake.Mutations("create", "start", "stop", "remove", "pull", "tag", "untag"); !slices.Equal(got, want) {
		t.Errorf("reset called\n%q, want\n%q", got, want)
	}
	if _, ok := fake.Containers["web"]; !ok {
		t.Error("reset removed a container that is not dk8s's")
	}
	if _, ok := fake.Containers["dk8s-old"]; !ok {
		t.Error("reset removed a container of the cluster kept in another directory")
	}
	if !strings.HasPrefix(stderr, "removed dk8s-kubelet\nremoved dk8s-scheduler\n") ||
		!strings.HasSuffix(stderr, "removed dk8s-extra\nkept "+dir+" (etcd data, PKI, kubeconfigs): 'dk8s start' brings the cluster back\n") || stdout != "" {
		t.Errorf("reset said %q; output %q", stderr, stdout)
	}
}

func TestResetRefusesWhileAnotherDirsClusterRuns(t *testing.T) {
	refuseOnANode(t)
	dir, other := t.TempDir(), t.TempDir()
	fake := wholeCluster(other)
	_, _, err := runFake(t, fake, "reset", "--dir", dir)
	want := "this host runs the cluster kept in " + other + " (dk8s-etcd), not " + dir + "; nothing was changed: 'dk8s reset --dir " + other + "' first, or delete " + dir + " by hand if it is a leftover"
	if err == nil || err.Error() != want {
		t.Errorf("reset while another directory's cluster runs: error %v, want %q", err, want)
	}
	if m := fake.Mutations("create", "start", "stop", "remove"); len(m) != 0 {
		t.Errorf("a refused reset changed containers: %v", m)
	}
}
