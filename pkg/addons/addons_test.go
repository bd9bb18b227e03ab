package addons

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
)

func testConfig() Config {
	return Config{
		Flannel:   Image{"docker.io/flannel/flannel:v0.28.10", "sha256:f"},
		KubeProxy: Image{"registry.k8s.io/kube-proxy:v1.37.2", "sha256:p"},
		CoreDNS:   Image{"registry.k8s.io/coredns/coredns:v1.14.6", "sha256:d"},
		PodCIDR:   "10.244.0.0/16", DNSIP: "10.96.0.10", Server: "https://192.0.2.10:6443",
		EnvNames: []string{"GOGC"},
	}
}

func proxyDS(t *testing.T, cs kubernetes.Interface) *appsv1.DaemonSet {
	t.Helper()
	ds, err := cs.AppsV1().DaemonSets(Namespace).Get(context.Background(), KubeProxyDaemonSet, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func envOf(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			m[e.Name] = e.Value
		}
	}
	return m
}

// A new cluster's add-ons are kubeadm's: CoreDNS with two replicas kept
// apart, probed, with its metrics port and nothing but NET_BIND_SERVICE;
// kube-proxy from a configuration file in iptables mode; flannel probed
// on its loopback health port, with requests.
func TestANewClustersAddonsAreKubeadms(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewSimpleClientset()
	if err := Ensure(ctx, cs, testConfig()); err != nil {
		t.Fatal(err)
	}
	dns, err := cs.AppsV1().Deployments(Namespace).Get(ctx, CoreDNSDeployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := dns.Spec.Template.Spec
	c := spec.Containers[0]
	if *dns.Spec.Replicas != 2 || spec.Affinity == nil || spec.Affinity.PodAntiAffinity == nil {
		t.Errorf("CoreDNS: %d replicas, affinity %+v; want 2 kept apart", *dns.Spec.Replicas, spec.Affinity)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/health" || c.LivenessProbe.HTTPGet.Port.IntValue() != 8080 ||
		c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/ready" || c.ReadinessProbe.HTTPGet.Port.IntValue() != 8181 {
		t.Errorf("CoreDNS's probes: %+v %+v", c.LivenessProbe, c.ReadinessProbe)
	}
	sc := c.SecurityContext
	if sc == nil || !slices.Equal(sc.Capabilities.Add, []corev1.Capability{"NET_BIND_SERVICE"}) || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		*sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("CoreDNS's security context: %+v", sc)
	}
	if c.Resources.Limits.Memory().String() != "170Mi" || c.Resources.Requests.Memory().String() != "70Mi" {
		t.Errorf("CoreDNS's resources: %+v", c.Resources)
	}
	svc, err := cs.CoreV1().Services(Namespace).Get(ctx, DNSService, metav1.GetOptions{})
	if err != nil || svc.Spec.ClusterIP != "10.96.0.10" || len(svc.Spec.Ports) != 3 || svc.Spec.Ports[2].Port != 9153 {
		t.Errorf("kube-dns: %+v, %v", svc, err)
	}
	cf, _ := cs.CoreV1().ConfigMaps(Namespace).Get(ctx, "coredns", metav1.GetOptions{})
	if !strings.Contains(cf.Data["Corefile"], "prometheus :9153") || !strings.Contains(cf.Data["Corefile"], "disable success cluster.local") {
		t.Errorf("Corefile:\n%s", cf.Data["Corefile"])
	}

	proxy := proxyDS(t, cs)
	if cmd := proxy.Spec.Template.Spec.Containers[0].Command; !slices.Contains(cmd, "--config=/var/lib/kube-proxy/config.conf") || len(cmd) != 3 {
		t.Errorf("kube-proxy's command: %v, want its configuration file and the node's name alone", cmd)
	}
	pcm, _ := cs.CoreV1().ConfigMaps(Namespace).Get(ctx, kubeProxyConfigMap, metav1.GetOptions{})
	if modeOf(pcm.Data[kubeProxyConfigKey]) != ProxyModeIPTables || !strings.Contains(pcm.Data[kubeProxyConfigKey], "clusterCIDR: 10.244.0.0/16") ||
		!strings.Contains(pcm.Data["kubeconfig.conf"], "server: https://192.0.2.10:6443") {
		t.Errorf("kube-proxy's config:\n%s", pcm.Data)
	}
	if proxy.Spec.Template.Annotations[ProxyModeAnnotation] != ProxyModeIPTables {
		t.Errorf("kube-proxy's pods say mode %q", proxy.Spec.Template.Annotations[ProxyModeAnnotation])
	}

	fl, _ := cs.AppsV1().DaemonSets(Namespace).Get(ctx, FlannelDaemonSet, metav1.GetOptions{})
	fc := fl.Spec.Template.Spec.Containers[0]
	if fc.LivenessProbe == nil || fc.LivenessProbe.HTTPGet.Host != "127.0.0.1" || fc.LivenessProbe.HTTPGet.Port.IntValue() != FlannelHealthPort ||
		!slices.Contains(fc.Args, "--healthz-ip=127.0.0.1") || fc.Resources.Requests.Cpu().String() != "100m" {
		t.Errorf("flannel: args %v, probe %+v, resources %+v", fc.Args, fc.LivenessProbe, fc.Resources)
	}
	for _, m := range []metav1.ObjectMeta{dns.ObjectMeta, proxy.ObjectMeta, fl.ObjectMeta} {
		if revisionOf(m) != Revision {
			t.Errorf("%s is stamped revision %d", m.Name, revisionOf(m))
		}
	}
}

// An add-on of a dk8s from before revisions (revision 1) has its spec
// replaced on a rerun, keeping what its owner chose: the image, CoreDNS's
// replicas, an edited Corefile; kube-proxy gets its configuration file
// beside the kubeconfig it had.
func TestARerunUpgradesAnOlderRevisionKeepingTheOwnersChoices(t *testing.T) {
	ctx := context.Background()
	old := map[string]string{"app.kubernetes.io/managed-by": "dk8s"}
	replicas := int32(3)
	oldDNS := coreDNSDeployment(testConfig())
	oldDNS.Annotations = nil
	oldDNS.Spec.Replicas = &replicas
	oldDNS.Spec.Template.Spec.Containers[0].Image = "registry.example/coredns:mine"
	oldDNS.Spec.Template.Spec.Containers[0].SecurityContext = nil
	oldProxy := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: KubeProxyDaemonSet, Namespace: Namespace, Labels: old},
		Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "kube-proxy", Image: "registry.k8s.io/kube-proxy:v1.37.2", Command: []string{"kube-proxy", "--cluster-cidr=10.244.0.0/16"},
			Env: []corev1.EnvVar{{Name: "GOGC", Value: "25"}},
		}}}}},
	}
	cs := fake.NewSimpleClientset(oldDNS, oldProxy,
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: kubeProxyConfigMap, Namespace: Namespace, Labels: old}, Data: map[string]string{"kubeconfig.conf": "mine"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: Namespace, Labels: old}, Data: map[string]string{"Corefile": corefileRevision1 + "# mine\n"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: DNSService, Namespace: Namespace, Labels: old}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10", Ports: dnsServicePorts()[:2]}},
	)
	c := testConfig()
	c.KeepEnv = true // a control plane that joined: the profile's GOGC stays
	if err := Ensure(ctx, cs, c); err != nil {
		t.Fatal(err)
	}
	dns, _ := cs.AppsV1().Deployments(Namespace).Get(ctx, CoreDNSDeployment, metav1.GetOptions{})
	dc := dns.Spec.Template.Spec.Containers[0]
	if *dns.Spec.Replicas != 3 || dc.Image != "registry.example/coredns:mine" || dc.SecurityContext == nil || revisionOf(dns.ObjectMeta) != Revision {
		t.Errorf("CoreDNS after the rerun: %d replicas, image %s, security %+v, revision %d", *dns.Spec.Replicas, dc.Image, dc.SecurityContext, revisionOf(dns.ObjectMeta))
	}
	proxy := proxyDS(t, cs)
	pc := proxy.Spec.Template.Spec.Containers[0]
	if !slices.Contains(pc.Command, "--config=/var/lib/kube-proxy/config.conf") || envOf(pc)["GOGC"] != "25" {
		t.Errorf("kube-proxy after the rerun: %v, env %v", pc.Command, envOf(pc))
	}
	pcm, _ := cs.CoreV1().ConfigMaps(Namespace).Get(ctx, kubeProxyConfigMap, metav1.GetOptions{})
	if pcm.Data["kubeconfig.conf"] != "mine" || modeOf(pcm.Data[kubeProxyConfigKey]) != ProxyModeIPTables {
		t.Errorf("kube-proxy's config after the rerun: %v", pcm.Data)
	}
	cf, _ := cs.CoreV1().ConfigMaps(Namespace).Get(ctx, "coredns", metav1.GetOptions{})
	if !strings.HasSuffix(cf.Data["Corefile"], "# mine\n") {
		t.Errorf("an edited Corefile was replaced:\n%s", cf.Data["Corefile"])
	}
	svc, _ := cs.CoreV1().Services(Namespace).Get(ctx, DNSService, metav1.GetOptions{})
	if len(svc.Spec.Ports) != 3 || svc.Spec.ClusterIP != "10.96.0.10" {
		t.Errorf("kube-dns after the rerun: %+v", svc.Spec)
	}

	// revision 1's own Corefile, unchanged, is replaced by kubeadm's.
	cf.Data["Corefile"] = corefileRevision1
	cs.CoreV1().ConfigMaps(Namespace).Update(ctx, cf, metav1.UpdateOptions{})
	if err := Ensure(ctx, cs, c); err != nil {
		t.Fatal(err)
	}
	cf, _ = cs.CoreV1().ConfigMaps(Namespace).Get(ctx, "coredns", metav1.GetOptions{})
	if cf.Data["Corefile"] != corefile {
		t.Errorf("revision 1's Corefile was kept:\n%s", cf.Data["Corefile"])
	}
}

// A workload its owner replaced by their own (not dk8s's) is not upgraded.
func TestAnAddonThatIsNotDk8ssKeepsItsSpec(t *testing.T) {
	ctx := context.Background()
	mine := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: KubeProxyDaemonSet, Namespace: Namespace},
		Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "kube-proxy", Image: "registry.example/kube-proxy:mine", Command: []string{"my-proxy"},
		}}}}},
	}
	cs := fake.NewSimpleClientset(mine)
	if err := Ensure(ctx, cs, testConfig()); err != nil {
		t.Fatal(err)
	}
	if got := proxyDS(t, cs).Spec.Template.Spec.Containers[0].Command; !slices.Equal(got, []string{"my-proxy"}) {
		t.Errorf("the owner's kube-proxy became %v", got)
	}
}

// --proxy-mode on an existing cluster changes the mode in kube-proxy's
// file, keeping the rest of it, and rolls its pods; without it the
// cluster keeps its mode.
func TestProxyModeChangesOnlyWhenAsked(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewSimpleClientset()
	if err := Ensure(ctx, cs, testConfig()); err != nil {
		t.Fatal(err)
	}
	pcm, _ := cs.CoreV1().ConfigMaps(Namespace).Get(ctx, kubeProxyConfigMap, metav1.GetOptions{})
	pcm.Data[kubeProxyConfigKey] = strings.Replace(pcm.Data[kubeProxyConfigKey], "maxPerCore: 0", "maxPerCore: 4", 1)
	cs.CoreV1().ConfigMaps(Namespace).Update(ctx, pcm, metav1.UpdateOptions{})
	c := testConfig()
	c.ProxyMode = ProxyModeNFTables
	if err := Ensure(ctx, cs, c); err != nil {
		t.Fatal(err)
	}
	pcm, _ = cs.CoreV1().ConfigMaps(Namespace).Get(ctx, kubeProxyConfigMap, metav1.GetOptions{})
	if modeOf(pcm.Data[kubeProxyConfigKey]) != ProxyModeNFTables || !strings.Contains(pcm.Data[kubeProxyConfigKey], "maxPerCore: 4") {
		t.Errorf("after --proxy-mode nftables:\n%s", pcm.Data[kubeProxyConfigKey])
	}
	if got := proxyDS(t, cs).Spec.Template.Annotations[ProxyModeAnnotation]; got != ProxyModeNFTables {
		t.Errorf("kube-proxy's pods say %q: they would not roll onto nftables", got)
	}
	if err := Ensure(ctx, cs, testConfig()); err != nil {
		t.Fatal(err)
	}
	if got := proxyDS(t, cs).Spec.Template.Annotations[ProxyModeAnnotation]; got != ProxyModeNFTables {
		t.Errorf("a rerun without --proxy-mode moved kube-proxy to %q", got)
	}
	c.ProxyMode = "ipvs"
	if err := Ensure(ctx, cs, c); err == nil || !strings.Contains(err.Error(), "use one of iptables, nftables") {
		t.Errorf("--proxy-mode ipvs: %v", err)
	}
}

// On a current revision a rerun patches: the image-ID annotation always,
// the image on an upgrade only, the profile's variables unless kept; a
// patch that changes nothing leaves the pod template as it was.
func TestARerunPatchesImageAndEnvironment(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewSimpleClientset()
	c := testConfig()
	if err := Ensure(ctx, cs, c); err != nil {
		t.Fatal(err)
	}
	before := proxyDS(t, cs)
	if err := Ensure(ctx, cs, c); err != nil {
		t.Fatal(err)
	}
	if after := proxyDS(t, cs); !reflect.DeepEqual(after.Spec.Template, before.Spec.Template) {
		t.Errorf("a rerun changed the pod template:\n%+v", after.Spec.Template)
	}
	ds := proxyDS(t, cs)
	ds.Spec.Template.Spec.Containers[0].Image = "registry.example/kube-proxy:mine"
	cs.AppsV1().DaemonSets(Namespace).Update(ctx, ds, metav1.UpdateOptions{})
	c.KubeProxy.ID = "sha256:new"
	c.Env = []corev1.EnvVar{{Name: "GOGC", Value: "25"}}
	if err := Ensure(ctx, cs, c); err != nil {
		t.Fatal(err)
	}
	ds = proxyDS(t, cs)
	pc := ds.Spec.Template.Spec.Containers[0]
	if pc.Image != "registry.example/kube-proxy:mine" || ds.Spec.Template.Annotations[ImageIDAnnotation] != "sha256:new" || envOf(pc)["GOGC"] != "25" {
		t.Errorf("after a rerun of the small profile: image %s, ID %s, env %v", pc.Image, ds.Spec.Template.Annotations[ImageIDAnnotation], envOf(pc))
	}
	c.Env = nil
	c.Upgrade = true
	if err := Ensure(ctx, cs, c); err != nil {
		t.Fatal(err)
	}
	pc = proxyDS(t, cs).Spec.Template.Spec.Containers[0]
	if pc.Image != c.KubeProxy.Name || len(envOf(pc)) != 0 {
		t.Errorf("after an upgrade back to the default profile: image %s, env %v", pc.Image, envOf(pc))
	}
}

func TestWaitAddonsWaitsForTheRollout(t *testing.T) {
	ctx := context.Background()
	replicas := int32(1)
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy", Namespace: Namespace, Generation: 2},
		Status: appsv1.DaemonSetStatus{ObservedGeneration: 2, DesiredNumberScheduled: 1, UpdatedNumberScheduled: 0, NumberReady: 1}}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: Namespace, Generation: 1}, Spec: appsv1.DeploymentSpec{Replicas: &replicas},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, UpdatedReplicas: 1, ReadyReplicas: 1, Replicas: 1}}
	flannel := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: FlannelDaemonSet, Namespace: Namespace, Generation: 1},
		Status: appsv1.DaemonSetStatus{ObservedGeneration: 1, DesiredNumberScheduled: 2, UpdatedNumberScheduled: 2, NumberReady: 2}}
	cs := fake.NewSimpleClientset(ds, dep, flannel)
	err := Wait(ctx, cs, 100*time.Millisecond, 1500*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "kube-proxy: 0 of 1 updated") {
		t.Fatalf("an old kube-proxy pod, ready, is not a rolled-out add-on: %v", err)
	}
	ds.Status.UpdatedNumberScheduled = 1
	cs.AppsV1().DaemonSets(Namespace).UpdateStatus(ctx, ds, metav1.UpdateOptions{})
	if err := Wait(ctx, cs, 100*time.Millisecond, 3*time.Second); err != nil {
		t.Errorf("rolled out: %v", err)
	}
}

// A pod that cannot start is named with its reason, as 'kubectl describe'
// would show it, so that the error says what to fix.
func TestWaitAddonsNamesAStuckPod(t *testing.T) {
	ctx := context.Background()
	replicas := int32(1)
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "kube-proxy"}}
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy", Namespace: Namespace, Generation: 1}, Spec: appsv1.DaemonSetSpec{Selector: sel},
		Status: appsv1.DaemonSetStatus{ObservedGeneration: 1, DesiredNumberScheduled: 1, UpdatedNumberScheduled: 1}}
	flannel := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: FlannelDaemonSet, Namespace: Namespace, Generation: 1},
		Status: appsv1.DaemonSetStatus{ObservedGeneration: 1, DesiredNumberScheduled: 1, UpdatedNumberScheduled: 1, NumberReady: 1}}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: Namespace, Generation: 1}, Spec: appsv1.DeploymentSpec{Replicas: &replicas},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, UpdatedReplicas: 1, ReadyReplicas: 1, Replicas: 1}}
	pod := func(name string, st corev1.ContainerStatus) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace, Labels: sel.MatchLabels},
			Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{st}}}
	}
	for _, tc := range []struct {
		pod  *corev1.Pod
		want string
	}{
		{pod("kube-proxy-a", corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerError", Message: "failed to mkdir \"/lib/modules\": read-only file system"}}}),
			`kube-proxy: 1 of 1 updated, 0 ready; pod kube-proxy-a: CreateContainerError: failed to mkdir "/lib/modules": read-only file system`},
		{pod("kube-proxy-b", corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 10s"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", Message: "iptables: not found\n"}}}),
			`pod kube-proxy-b: CrashLoopBackOff: exited 1 (Error) iptables: not found`},
	} {
		cs := fake.NewSimpleClientset(ds, flannel, dep, tc.pod)
		if err := Wait(ctx, cs, 100*time.Millisecond, 600*time.Millisecond); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want %q in: %v", tc.want, err)
		}
	}
	// A pod still being made is no trouble to report.
	cs := fake.NewSimpleClientset(ds, flannel, dep, pod("kube-proxy-c", corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}))
	if err := Wait(ctx, cs, 100*time.Millisecond, 600*time.Millisecond); err == nil || strings.Contains(err.Error(), "; pod") {
		t.Errorf("a pod being made was reported as trouble: %v", err)
	}
}
