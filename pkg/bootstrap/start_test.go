package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/dk8s/dk8s"
	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/containers/containerstest"
	"github.com/dk8s/dk8s/pkg/images"
	"github.com/dk8s/dk8s/pkg/pki"
)

// startFixture is a control plane started against the fake Engine: every
// image present, every probe healthy, a fake apiserver for the admin
// binding. The host's checks are real: root, free ports, free disk.
type startFixture struct {
	engine *containerstest.Engine
	kube   *fake.Clientset
	cfg    Config
	rel    *images.Release
	events []Event
	opts   StartOptions
}

func newStartFixture(t *testing.T) *startFixture {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("start checks that it runs as root: run the unit tests as root, as 'make test' does in CI")
	}
	lock, err := images.ParseLock(dk8s.DefaultLock)
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := lock.Release("")
	f := &startFixture{
		engine: &containerstest.Engine{Images: map[string]containers.Image{}},
		kube:   fake.NewSimpleClientset(),
		rel:    rel,
		cfg: Config{ClusterName: "dk8s", Dir: filepath.Join(t.TempDir(), "cluster"), NodeName: "node-1",
			AdvertiseAddress: net.ParseIP("192.0.2.10"), AdvertiseGiven: true, ShimBinary: staticELF(t)},
	}
	for i, img := range rel.Images {
		f.engine.Images[img.Name] = containers.Image{ID: "sha256:" + strings.Repeat(string(rune('a'+i)), 64)}
	}
	f.opts = StartOptions{
		Events: func(e Event) { f.events = append(f.events, e) },
		Probe:  func(context.Context, *pki.PKI, string) error { return nil },
		Client: func(string) (kubernetes.Interface, error) { return f.kube, nil },
		// The host's ports are its own business: a cluster may run here.
		listening: func() map[int]string { return map[int]string{} },
	}
	return f
}

func (f *startFixture) start(t *testing.T) error {
	t.Helper()
	f.events = nil
	return Start(context.Background(), f.engine, f.cfg, f.rel, f.opts)
}

func (f *startFixture) said(what string) bool {
	for _, e := range f.events {
		if strings.Contains(e.Message, what) {
			return true
		}
	}
	return false
}

func TestStartMakesTheControlPlaneInOrderAndARerunChangesNothing(t *testing.T) {
	f := newStartFixture(t)
	if err := f.start(t); err != nil {
		t.Fatal(err)
	}
	want := []string{"create dk8s-etcd", "create dk8s-apiserver", "create dk8s-controller-manager", "create dk8s-scheduler", "create dk8s-csr-approver", "create dk8s-etcd-snapshotter"}
	if got := f.engine.Mutations("create"); !slices.Equal(got, want) {
		t.Errorf("created %v, want %v in this order", got, want)
	}
	s, err := ReadSettings(f.cfg.Dir)
	if err != nil || s.KubernetesVersion != f.rel.Kubernetes || s.AdvertiseAddress != "192.0.2.10" || s.NodeName != "node-1" {
		t.Errorf("the marker should record the cluster: %+v, %v", s, err)
	}
	for _, file := range []string{"pki/ca.key", "pki/etcd/ca.key", "pki/sa.key", "admin.conf", "scheduler.conf"} {
		if st, err := os.Stat(filepath.Join(f.cfg.Dir, file)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: want it, 0600: %v", file, err)
		}
	}
	if _, err := f.kube.RbacV1().ClusterRoleBindings().Get(context.Background(), AdminGroup, metav1.GetOptions{}); err != nil {
		t.Errorf("the admin group should be bound once the apiserver is ready: %v", err)
	}

	f.engine.Calls = nil
	if err := f.start(t); err != nil {
		t.Fatal(err)
	}
	if m := f.engine.Mutations("create", "stop", "remove", "start"); len(m) != 0 {
		t.Errorf("a rerun changed containers: %v", m)
	}
	if !f.said("dk8s-etcd unchanged") {
		t.Errorf("a rerun should say each container is unchanged: %+v", f.events)
	}

	f.cfg.ExtraArgs = map[string]map[string]string{"kube-scheduler": {"v": "4"}}
	f.engine.Calls = nil
	if err := f.start(t); err != nil {
		t.Fatal(err)
	}
	if got := f.engine.Mutations("create"); !slices.Equal(got, []string{"create dk8s-scheduler"}) {
		t.Errorf("a scheduler flag should replace the scheduler alone, made %v", got)
	}
}

func TestStartShowsTheHintOfAComponentThatDoesNotComeUp(t *testing.T) {
	f := newStartFixture(t)
	f.engine.Logs = map[string]string{"dk8s-apiserver": "cannot reach etcd\n"}
	f.opts.Probe = func(_ context.Context, _ *pki.PKI, comp string) error {
		if comp == "kube-apiserver" {
			return errors.New("HTTP 503")
		}
		return nil
	}
	f.opts.Timeout = 1500 * 1e6 // 1.5s
	err := f.start(t)
	var ce *ComponentError
	if !errors.As(err, &ce) || ce.Component != "kube-apiserver" || !strings.Contains(err.Error(), "HTTP 503") ||
		!strings.Contains(err.Error(), "cannot reach etcd") || !strings.Contains(err.Error(), "dk8s logs kube-apiserver") {
		t.Fatalf("want the apiserver's error with its logs and hint, got %v", err)
	}
	// etcd and the apiserver are made together; none after the one that
	// did not come up is said to be healthy, and the rest, which would
	// only be refused their leader lease, are not made at all.
	if f.said("kube-controller-manager is healthy") || !f.said("etcd is healthy") {
		t.Errorf("etcd alone should be said healthy: %+v", f.events)
	}
	if got := f.engine.Mutations("create"); !slices.Equal(got, []string{"create dk8s-etcd", "create dk8s-apiserver"}) {
		t.Errorf("made %v before the apiserver was ready, want etcd and the apiserver alone", got)
	}
	// A slow machine's apiserver answers a minute later: the error says
	// to run start again, and that run finishes the cluster.
	if !strings.Contains(err.Error(), "Run the same dk8s start again to finish") || !strings.Contains(err.Error(), "--timeout") {
		t.Errorf("the error should say to run start again, or with a longer --timeout: %v", err)
	}
	f.opts.Probe = func(context.Context, *pki.PKI, string) error { return nil }
	if err := f.start(t); err != nil {
		t.Fatalf("the rerun: %v", err)
	}
	for _, c := range []string{"dk8s-controller-manager", "dk8s-scheduler"} {
		if !slices.Contains(f.engine.Mutations("create"), "create "+c) {
			t.Errorf("the rerun should make %s: %v", c, f.engine.Mutations("create"))
		}
	}
	if _, err := f.kube.RbacV1().ClusterRoleBindings().Get(context.Background(), AdminGroup, metav1.GetOptions{}); err != nil {
		t.Errorf("the rerun should bind the admin: %v", err)
	}
}

// Made together, the components are still answered for in order: of two
// that do not come up, the earlier one's error is the start's, though the
// later one's wait began with it.
func TestStartSaysTheFirstComponentThatDoesNotComeUp(t *testing.T) {
	f := newStartFixture(t)
	f.opts.Probe = func(_ context.Context, _ *pki.PKI, comp string) error {
		if comp == "kube-apiserver" || comp == "kube-scheduler" {
			return errors.New("HTTP 503 from " + comp)
		}
		return nil
	}
	f.opts.Timeout = 1500 * 1e6 // 1.5s
	err := f.start(t)
	var ce *ComponentError
	if !errors.As(err, &ce) || ce.Component != "kube-apiserver" || strings.Contains(err.Error(), "kube-scheduler") {
		t.Fatalf("want the apiserver's error alone, got %v", err)
	}
}

// An upgrade keeps the strict order: no component is made before the one
// before it is healthy, so none ever runs newer than the apiserver.
func TestStartInAnUpgradeMakesNothingAfterAComponentThatDoesNotComeUp(t *testing.T) {
	f := newStartFixture(t)
	f.opts.Probe = func(_ context.Context, _ *pki.PKI, comp string) error {
		if comp == "kube-apiserver" {
			return errors.New("HTTP 503")
		}
		return nil
	}
	f.opts.Timeout = 1500 * 1e6 // 1.5s
	var minor int
	fmt.Sscanf(f.rel.Kubernetes, "v1.%d.", &minor)
	os.MkdirAll(f.cfg.Dir, 0o700)
	if err := writeSettings(f.cfg.Dir, Settings{Name: f.cfg.ClusterName, NodeName: f.cfg.NodeName, KubernetesVersion: fmt.Sprintf("v1.%d.0", minor-1)}); err != nil {
		t.Fatal(err)
	}
	err := f.start(t)
	var ce *ComponentError
	if !errors.As(err, &ce) || ce.Component != "kube-apiserver" {
		t.Fatalf("want the apiserver's error, got %v", err)
	}
	if !f.said("upgrading from") {
		t.Fatalf("the start should have been an upgrade: %+v", f.events)
	}
	if slices.Contains(f.engine.Mutations("create"), "create dk8s-controller-manager") {
		t.Error("nothing after a component that did not come up should start in an upgrade")
	}
}

func TestStartRefusesBeforeChangingAnything(t *testing.T) {
	f := newStartFixture(t)
	delete(f.engine.Images, f.rel.Images[0].Name)
	if err := f.start(t); err == nil || !strings.Contains(err.Error(), "images missing") || !strings.Contains(err.Error(), "dk8s pull") {
		t.Errorf("want the missing image named with the command that fetches it, got %v", err)
	}
	if m := f.engine.Mutations("create"); len(m) != 0 {
		t.Errorf("a refused start made containers: %v", m)
	}
	if _, err := os.Stat(filepath.Join(f.cfg.Dir, "pki")); !os.IsNotExist(err) {
		t.Error("a refused start made a PKI")
	}

	g := newStartFixture(t)
	os.MkdirAll(g.cfg.Dir, 0o700)
	os.WriteFile(filepath.Join(g.cfg.Dir, "passwd"), []byte("x"), 0o600)
	if err := g.start(t); err == nil || !strings.Contains(err.Error(), "not made by dk8s") {
		t.Errorf("a directory of other files should be refused: %v", err)
	}
	if entries, _ := os.ReadDir(g.cfg.Dir); len(entries) != 1 {
		t.Errorf("the refused start wrote into the directory: %v", entries)
	}
}

// The host checks cover the whole node: a port kubelet needs stops a start
// before the control plane is made.
func TestStartChecksTheNodesPortsFirst(t *testing.T) {
	f := newStartFixture(t)
	f.cfg.Node = true
	f.opts.listening = func() map[int]string { return map[int]string{10250: "kubelet (pid 42)", 6443: "haproxy (pid 7)"} }
	err := f.start(t)
	var pe *PreflightError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "port 10250") || !strings.Contains(err.Error(), "kubelet (pid 42)") ||
		!strings.Contains(err.Error(), "port 6443") || !strings.Contains(err.Error(), "haproxy (pid 7)") {
		t.Fatalf("want both ports named with their holders, got %v", err)
	}
	if m := f.engine.Mutations("create"); len(m) != 0 {
		t.Errorf("a refused start made containers: %v", m)
	}
}

// A file an extra flag names must be in the cluster directory: Docker would
// otherwise bind an empty directory made in its place.
func TestStartRefusesAFlagNamingAMissingFile(t *testing.T) {
	f := newStartFixture(t)
	f.cfg.ExtraArgs = map[string]map[string]string{"kube-apiserver": {"audit-policy-file": "/etc/dk8s/audit.yaml"}}
	err := f.start(t)
	if err == nil || !strings.Contains(err.Error(), "/etc/dk8s/audit.yaml") || !strings.Contains(err.Error(), "put the file there") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.cfg.Dir, "audit.yaml")); !os.IsNotExist(err) {
		t.Error("nothing may be made in the file's place")
	}
}

// staticELF writes the smallest file debug/elf reads as a static
// executable (no program interpreter): the shim start installs, which the
// fake engine never runs.
func staticELF(t *testing.T) string {
	t.Helper()
	var h [64]byte
	copy(h[:], "\x7fELF")
	h[4], h[5], h[6] = 2, 1, 1       // 64-bit, little-endian, version 1
	h[16], h[18], h[20] = 2, 0x3e, 1 // ET_EXEC, x86-64, version 1
	h[52], h[54], h[58] = 64, 56, 64 // header, program and section header sizes
	path := filepath.Join(t.TempDir(), "dk8s")
	if err := os.WriteFile(path, h[:], 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// No node may delete Node objects: a start grants it to none, and takes
// back the role an earlier dk8s granted system:nodes.
func TestStartGrantsNodesNoDeleteOfNodes(t *testing.T) {
	f := newStartFixture(t)
	ctx := context.Background()
	f.kube.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "dk8s:node-leave"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"delete"}}}}, metav1.CreateOptions{})
	f.kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "dk8s:node-leave"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "dk8s:node-leave"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "system:nodes"}}}, metav1.CreateOptions{})
	if err := f.start(t); err != nil {
		t.Fatal(err)
	}
	roles, _ := f.kube.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{})
	for _, r := range roles.Items {
		for _, rule := range r.Rules {
			if slices.Contains(rule.Resources, "nodes") && slices.Contains(rule.Verbs, "delete") {
				t.Errorf("ClusterRole %s lets its subjects delete nodes", r.Name)
			}
		}
	}
	if _, err := f.kube.RbacV1().ClusterRoleBindings().Get(ctx, "dk8s:node-leave", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the earlier node-leave binding should be gone: %v", err)
	}
}
