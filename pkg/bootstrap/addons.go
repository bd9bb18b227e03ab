package bootstrap

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/dk8s/dk8s/internal/wait"
	"github.com/dk8s/dk8s/pkg/images"
)

type kubeClient = kubernetes.Interface

func clientFor(kubeconfig string) (kubeClient, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	rc.Timeout = 15 * time.Second
	// client-go's default of 5 requests a second (a burst of 10) held a
	// start's few dozen writes (RBAC, the add-ons) back by a second and
	// more; dk8s's own requests are few and must not wait on themselves.
	rc.QPS, rc.Burst = 100, 200
	return kubernetes.NewForConfig(rc)
}

const addonNS = "kube-system"

// kubeProxyPorts are kube-proxy's metrics and health ports, on the host's
// network: checked free before a node starts.
var kubeProxyPorts = []int{10249, 10256}

var managed = map[string]string{"app.kubernetes.io/managed-by": "dk8s"}

// create makes obj unless it exists: the add-ons are dk8s's defaults, and a
// user who changed one keeps the change.
func create[T any](ctx context.Context, what string, fn func(context.Context, T, metav1.CreateOptions) (T, error), obj T) error {
	if _, err := fn(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating %s: %w", what, err)
	}
	return nil
}

// ensureAddons creates the pod network (flannel.go), kube-proxy and CoreDNS
// as kubeadm and its tutorials deploy them, with
// the lock's images (already in the runtime, so no pull happens).
func ensureAddons(ctx context.Context, cs kubeClient, cfg Config, rel *images.Release, dnsIP string, imageIDs map[string]string, upgrade bool) error {
	proxyImg, _ := rel.Image("kube-proxy")
	dnsImg, _ := rel.Image("coredns")
	netImg, ok := rel.Image("flannel")
	if !ok {
		return fmt.Errorf("the lock's release %s names no flannel image: use a lock that does (dk8s images)", rel.Kubernetes)
	}
	// The pod network first: no other pod can start without it.
	if err := ensureFlannel(ctx, cs, cfg, netImg.Name, imageIDs[netImg.Name]); err != nil {
		return err
	}
	core, rbac, apps := cs.CoreV1(), cs.RbacV1(), cs.AppsV1()
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: addonNS, Labels: managed}
	}
	// kube-proxy reaches the apiserver at its host address: the service IP
	// it would otherwise use is what kube-proxy itself makes routable.
	proxyKubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: default
  cluster:
    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
    server: %s
contexts:
- name: default
  context: {cluster: default, namespace: default, user: default}
current-context: default
users:
- name: default
  user:
    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token
`, addonServer(cfg))
	steps := []error{
		create(ctx, "the kube-proxy service account", core.ServiceAccounts(addonNS).Create, &corev1.ServiceAccount{ObjectMeta: meta("kube-proxy")}),
		create(ctx, "kube-proxy's role binding", rbac.ClusterRoleBindings().Create, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "dk8s:node-proxier", Labels: managed},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:node-proxier"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "kube-proxy", Namespace: addonNS}},
		}),
		create(ctx, "kube-proxy's config", core.ConfigMaps(addonNS).Create, &corev1.ConfigMap{ObjectMeta: meta("kube-proxy"), Data: map[string]string{"kubeconfig.conf": proxyKubeconfig}}),
		create(ctx, "the kube-proxy daemon set", apps.DaemonSets(addonNS).Create, kubeProxy(cfg, proxyImg.Name, imageIDs[proxyImg.Name])),
		create(ctx, "the coredns service account", core.ServiceAccounts(addonNS).Create, &corev1.ServiceAccount{ObjectMeta: meta("coredns")}),
		create(ctx, "CoreDNS's role", rbac.ClusterRoles().Create, &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "system:coredns", Labels: managed},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"endpoints", "services", "pods", "namespaces"}, Verbs: []string{"list", "watch"}},
				{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
			},
		}),
		create(ctx, "CoreDNS's role binding", rbac.ClusterRoleBindings().Create, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "system:coredns", Labels: managed},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:coredns"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "coredns", Namespace: addonNS}},
		}),
		create(ctx, "CoreDNS's config", core.ConfigMaps(addonNS).Create, &corev1.ConfigMap{ObjectMeta: meta("coredns"), Data: map[string]string{"Corefile": corefile}}),
		create(ctx, "the CoreDNS deployment", apps.Deployments(addonNS).Create, coreDNS(cfg, dnsImg.Name, imageIDs[dnsImg.Name])),
	}
	// A Service is checked for first: creating it again fails on its
	// cluster IP, which it already holds, before the name is compared.
	if _, err := core.Services(addonNS).Get(ctx, "kube-dns", metav1.GetOptions{}); apierrors.IsNotFound(err) {
		steps = append(steps, create(ctx, "the kube-dns service", core.Services(addonNS).Create, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: addonNS, Labels: map[string]string{"k8s-app": "kube-dns", "app.kubernetes.io/managed-by": "dk8s"}},
			Spec: corev1.ServiceSpec{ClusterIP: dnsIP, Selector: map[string]string{"k8s-app": "kube-dns"}, Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(53)},
			}},
		}))
	}
	for _, err := range steps {
		if err != nil {
			return err
		}
	}
	// An upgrade (another --kubernetes-version) rolls the add-ons to the
	// release's images after the node, as kubeadm does; otherwise an image
	// a user set is left alone. The images are loaded into the runtime
	// under their canonical names, so a re-pulled image keeps its name: an
	// annotation with its ID rolls the add-on's pods when (and only when)
	// the content changed.
	// The add-ons run on every node but are one set for the cluster: they
	// follow the profile of the control plane that made the cluster. One
	// that joined it leaves their environment alone, or each start on a
	// control plane of another profile would roll them across the cluster.
	profile := cfg.Profile
	if cfg.EtcdClusterState == "existing" {
		profile = ""
	}
	proxyTo, dnsTo, netTo := "", "", ""
	if upgrade {
		proxyTo, dnsTo, netTo = proxyImg.Name, dnsImg.Name, netImg.Name
	}
	if _, err := apps.DaemonSets(addonNS).Patch(ctx, flannelDaemonSet, types.StrategicMergePatchType, addonPatch(flannelContainer, netTo, imageIDs[netImg.Name], profile), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("updating flannel: %w", err)
	}
	if _, err := apps.DaemonSets(addonNS).Patch(ctx, "kube-proxy", types.StrategicMergePatchType, addonPatch("kube-proxy", proxyTo, imageIDs[proxyImg.Name], profile), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("updating kube-proxy: %w", err)
	}
	if _, err := apps.Deployments(addonNS).Patch(ctx, "coredns", types.StrategicMergePatchType, addonPatch("coredns", dnsTo, imageIDs[dnsImg.Name], profile), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("updating CoreDNS: %w", err)
	}
	return nil
}

// addonPatch sets the image-ID annotation of an add-on's pods, its
// container's environment to profile p's (left alone for ""), and, unless image is "", its
// container's image: a strategic merge patch, so the container and its
// variables are matched by name and the rest of the spec is left as it is
// (a patch that changes nothing rolls nothing).
func addonPatch(container, image, id string, p Profile) []byte {
	c := map[string]any{"name": container}
	if p != "" {
		c["env"] = p.podEnvPatch()
	}
	if image != "" {
		c["image"] = image
	}
	patch := map[string]any{"spec": map[string]any{"template": map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{imageIDAnnotation: id}},
		"spec":     map[string]any{"containers": []any{c}},
	}}}
	data, err := json.Marshal(patch)
	if err != nil {
		panic(err) // maps of strings always marshal
	}
	return data
}

const corefile = `.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
`

// imageIDAnnotation carries the ID of the image an add-on's pods run, so
// that new content under the same name rolls them. An add-on is made with
// it, so that its first start is not a rollout too.
const imageIDAnnotation = "io.dk8s/image-id"

// nodeDaemonSet is an add-on that runs on every node, on the host's
// network, whatever the node's taints: kube-proxy and flannel. Its pods
// carry the image's ID (imageIDAnnotation) and run c with volumes.
func nodeDaemonSet(meta metav1.ObjectMeta, app map[string]string, serviceAccount, imageID string, c corev1.Container, volumes []corev1.Volume) *appsv1.DaemonSet {
	c.ImagePullPolicy = corev1.PullIfNotPresent
	return &appsv1.DaemonSet{
		ObjectMeta: meta,
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: app},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: app, Annotations: map[string]string{imageIDAnnotation: imageID}},
				Spec: corev1.PodSpec{
					HostNetwork:        true,
					ServiceAccountName: serviceAccount,
					PriorityClassName:  "system-node-critical",
					Tolerations:        []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					Containers:         []corev1.Container{c},
					Volumes:            volumes,
				},
			},
		},
	}
}

// hostPathVolume is a volume of the node's path.
func hostPathVolume(name, path string, t corev1.HostPathType) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path, Type: &t}}}
}

// configMapVolume is a volume of a ConfigMap's keys.
func configMapVolume(name, configMap string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: configMap}}}}
}

// fieldEnv is an environment variable of the pod's own field.
func fieldEnv(name, field string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: field}}}
}

func kubeProxy(cfg Config, image, imageID string) *appsv1.DaemonSet {
	privileged := true
	meta := metav1.ObjectMeta{Name: "kube-proxy", Namespace: addonNS, Labels: map[string]string{"k8s-app": "kube-proxy", "app.kubernetes.io/managed-by": "dk8s"}}
	return nodeDaemonSet(meta, map[string]string{"k8s-app": "kube-proxy"}, "kube-proxy", imageID, corev1.Container{
		Name:  "kube-proxy",
		Image: image,
		Command: []string{"kube-proxy", "--kubeconfig=/var/lib/kube-proxy/kubeconfig.conf",
			"--cluster-cidr=" + cfg.PodCIDR, "--hostname-override=$(NODE_NAME)",
			"--metrics-bind-address=127.0.0.1:10249", "--healthz-bind-address=127.0.0.1:10256",
			// Leave the host's conntrack table size alone.
			"--conntrack-max-per-core=0"},
		Env:             append([]corev1.EnvVar{fieldEnv("NODE_NAME", "spec.nodeName")}, cfg.Profile.podEnv()...),
		SecurityContext: &corev1.SecurityContext{Privileged: &privileged},
		// No /lib/modules of the host, which kubeadm mounts for IPVS mode's
		// modprobe: dk8s runs the iptables mode, whose tables and matches the
		// kernel loads by itself, and a host without that directory and a
		// read-only /usr (an immutable image, a machine container) cannot
		// have it made, so the pod would never start there.
		VolumeMounts: []corev1.VolumeMount{
			{Name: "config", MountPath: "/var/lib/kube-proxy"},
			{Name: "xtables-lock", MountPath: "/run/xtables.lock"},
		},
	}, []corev1.Volume{
		configMapVolume("config", "kube-proxy"),
		hostPathVolume("xtables-lock", "/run/xtables.lock", corev1.HostPathFileOrCreate),
	})
}

func coreDNS(cfg Config, image, imageID string) *appsv1.Deployment {
	labels := map[string]string{"k8s-app": "kube-dns"}
	replicas := int32(1)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: addonNS, Labels: map[string]string{"k8s-app": "kube-dns", "app.kubernetes.io/managed-by": "dk8s"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{imageIDAnnotation: imageID}},
				Spec: corev1.PodSpec{
					ServiceAccountName: "coredns",
					PriorityClassName:  "system-cluster-critical",
					DNSPolicy:          corev1.DNSDefault,
					Tolerations:        []corev1.Toleration{{Key: "CriticalAddonsOnly", Operator: corev1.TolerationOpExists}},
					Containers: []corev1.Container{{
						Name:            "coredns",
						Image:           image,
						ImagePullPolicy: corev1.PullIfNotPresent,
						Args:            []string{"-conf", "/etc/coredns/Corefile"},
						Env:             cfg.Profile.podEnv(),
						Ports: []corev1.ContainerPort{
							{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
							{Name: "dns-tcp", ContainerPort: 53, Protocol: corev1.ProtocolTCP},
						},
						// Every 2 s, as k3s's: kubelet first asks at a random
						// point of the period when it has just started (the
						// default 10 s held a new node's start back by up
						// to 10 s), and CoreDNS is ready within a second.
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8181)}}, PeriodSeconds: 2},
						VolumeMounts:   []corev1.VolumeMount{{Name: "config", MountPath: "/etc/coredns", ReadOnly: true}},
					}},
					Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "coredns"}}}}},
				},
			},
		},
	}
}

// waitAddons waits until flannel, kube-proxy and CoreDNS have rolled out: every
// pod of the current spec scheduled and ready (after an upgrade the old
// pods are ready too until they are replaced).
func waitAddons(ctx context.Context, cs kubeClient, timeout time.Duration) error {
	err := wait.Until(ctx, pollInterval, timeout, func(ctx context.Context) (bool, string, error) {
		for _, name := range []string{flannelDaemonSet, "kube-proxy"} {
			ds, err := cs.AppsV1().DaemonSets(addonNS).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, name + ": " + err.Error(), nil
			}
			if msg := daemonSetPending(ds); msg != "" {
				return false, name + ": " + msg + podTrouble(ctx, cs, ds.Spec.Selector), nil
			}
		}
		dep, err := cs.AppsV1().Deployments(addonNS).Get(ctx, "coredns", metav1.GetOptions{})
		if err != nil {
			return false, "coredns: " + err.Error(), nil
		}
		ds2 := dep.Status
		if ds2.ObservedGeneration < dep.Generation || dep.Spec.Replicas == nil || ds2.UpdatedReplicas != *dep.Spec.Replicas ||
			ds2.ReadyReplicas < 1 || ds2.Replicas != ds2.UpdatedReplicas {
			return false, fmt.Sprintf("coredns: %d updated, %d ready of %d", ds2.UpdatedReplicas, ds2.ReadyReplicas, ds2.Replicas) + podTrouble(ctx, cs, dep.Spec.Selector), nil
		}
		return true, "", nil
	})
	if err != nil {
		return fmt.Errorf("the add-ons did not come up: %w; see 'kubectl -n kube-system get pods' and 'dk8s logs kubelet'", err)
	}
	return nil
}

// podTrouble is why an add-on's pod is not running, as "; pod NAME:
// REASON: MESSAGE" (a container that cannot be made, an image that cannot
// be had, a crash with its exit), or "" when none says so: what a user would
// otherwise dig out of 'kubectl describe'.
func podTrouble(ctx context.Context, cs kubeClient, selector *metav1.LabelSelector) string {
	if selector == nil {
		return ""
	}
	pods, err := cs.CoreV1().Pods(addonNS).List(ctx, metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(selector)})
	if err != nil {
		return ""
	}
	for _, pod := range pods.Items {
		for _, c := range slices.Concat(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses) {
			w := c.State.Waiting
			if w == nil || w.Reason == "ContainerCreating" || w.Reason == "PodInitializing" {
				continue
			}
			msg := w.Message
			if t := c.LastTerminationState.Terminated; t != nil && (msg == "" || w.Reason == "CrashLoopBackOff") {
				msg = fmt.Sprintf("exited %d (%s) %s", t.ExitCode, t.Reason, strings.TrimSpace(t.Message))
			}
			return fmt.Sprintf("; pod %s: %s: %s", pod.Name, w.Reason, strings.TrimSpace(msg))
		}
	}
	return ""
}

// daemonSetPending says how far a DaemonSet's rollout is, or "" when every
// node runs a ready pod of its current spec.
func daemonSetPending(ds *appsv1.DaemonSet) string {
	st := ds.Status
	if st.ObservedGeneration < ds.Generation || st.DesiredNumberScheduled < 1 ||
		st.UpdatedNumberScheduled != st.DesiredNumberScheduled || st.NumberReady != st.DesiredNumberScheduled {
		return fmt.Sprintf("%d of %d updated, %d ready", st.UpdatedNumberScheduled, st.DesiredNumberScheduled, st.NumberReady)
	}
	return ""
}

// addonServer is where the node add-ons (kube-proxy, flanneld) reach the
// apiserver: the control plane's address, or where there are several the
// node's own balancer, which follows them all.
func addonServer(cfg Config) string {
	if cfg.ControlPlaneEndpoint != "" {
		return cfg.ClusterURL()
	}
	if cfg.HA {
		return lbURL()
	}
	return cfg.APIServerURL()
}
