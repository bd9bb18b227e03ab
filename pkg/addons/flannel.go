package addons

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/dk8s/dk8s/internal/kubeobj"
	"github.com/dk8s/dk8s/pkg/host"
)

// The pod network is flannel with its VXLAN backend, as the kubeadm
// tutorials deploy it: flanneld on every node (a DaemonSet on the host's
// network) takes the node's pod range from the controller-manager's
// allocation (--kube-subnet-mgr) and routes every other node's range
// through a VXLAN device. The node's CNI configuration is what flannel's own
// CNI plugin would derive from flanneld's lease (host.FlannelSubnetFile):
// the node writes it, not an init container.
const (
	FlannelDaemonSet = "kube-flannel-ds"
	FlannelContainer = "kube-flannel"
	// FlannelHealthPort is flanneld's health endpoint (/healthz), on the
	// node's loopback: upstream's kube-flannel.yml leaves it off, dk8s
	// gives kubelet something to probe.
	FlannelHealthPort = 10261
)

// flannelObjects are flannel's service account, its RBAC (kube-flannel.yml's
// own rules), its net-conf and its DaemonSet, reaching the apiserver at
// c.Server rather than through the kubernetes service, which kube-proxy
// may not have made routable yet on a new node.
func flannelObjects(c Config) (*corev1.ServiceAccount, *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding, *corev1.ConfigMap, *appsv1.DaemonSet) {
	server, _ := url.Parse(c.Server)
	app := map[string]string{"app": "flannel"}
	sa := &corev1.ServiceAccount{ObjectMeta: meta("flannel", app)}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "dk8s:flannel", Labels: kubeobj.Managed(nil)},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}},
			{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"nodes/status"}, Verbs: []string{"patch"}},
		},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "dk8s:flannel", Labels: kubeobj.Managed(nil)},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "dk8s:flannel"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "flannel", Namespace: Namespace}},
	}
	conf := &corev1.ConfigMap{ObjectMeta: meta("kube-flannel-cfg", app), Data: map[string]string{
		"net-conf.json": fmt.Sprintf(`{"Network": %q, "Backend": {"Type": "vxlan"}}`, c.PodCIDR),
	}}
	health := &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Host: "127.0.0.1", Path: "/healthz", Port: intstr.FromInt32(FlannelHealthPort)}},
		PeriodSeconds: 10, TimeoutSeconds: 5, FailureThreshold: 5,
	}
	ds := nodeDaemonSet(meta(FlannelDaemonSet, app), app, "flannel", c.Flannel, c.container(corev1.Container{
		Name:    FlannelContainer,
		Image:   c.Flannel.Name,
		Command: []string{"/opt/bin/flanneld"},
		Args: []string{"--ip-masq", "--kube-subnet-mgr",
			"--healthz-ip=127.0.0.1", fmt.Sprintf("--healthz-port=%d", FlannelHealthPort)},
		Env: []corev1.EnvVar{
			fieldEnv("POD_NAME", "metadata.name"), fieldEnv("POD_NAMESPACE", "metadata.namespace"),
			{Name: "EVENT_QUEUE_DEPTH", Value: "5000"},
			{Name: "KUBERNETES_SERVICE_HOST", Value: server.Hostname()},
			{Name: "KUBERNETES_SERVICE_PORT", Value: server.Port()},
		},
		// kube-flannel.yml's requests.
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("50Mi"),
		}},
		LivenessProbe:   health,
		SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}}},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "run", MountPath: filepath.Dir(host.FlannelSubnetFile)},
			{Name: "flannel-cfg", MountPath: "/etc/kube-flannel/"},
			{Name: "xtables-lock", MountPath: "/run/xtables.lock"},
		},
	}), []corev1.Volume{
		hostPathVolume("run", filepath.Dir(host.FlannelSubnetFile), corev1.HostPathDirectoryOrCreate),
		configMapVolume("flannel-cfg", "kube-flannel-cfg"),
		hostPathVolume("xtables-lock", "/run/xtables.lock", corev1.HostPathFileOrCreate),
	})
	return sa, role, binding, conf, ds
}

// ensureFlannel makes flannel's parts unless they exist, and brings its
// DaemonSet to c.
func ensureFlannel(ctx context.Context, cs kubernetes.Interface, c Config) error {
	sa, role, binding, conf, ds := flannelObjects(c)
	err := createAll(
		func() error {
			return kubeobj.Create(ctx, "flannel's service account", cs.CoreV1().ServiceAccounts(Namespace).Create, sa)
		},
		func() error { return kubeobj.Create(ctx, "flannel's role", cs.RbacV1().ClusterRoles().Create, role) },
		func() error {
			return kubeobj.Create(ctx, "flannel's role binding", cs.RbacV1().ClusterRoleBindings().Create, binding)
		},
		func() error {
			return kubeobj.Create(ctx, "flannel's config", cs.CoreV1().ConfigMaps(Namespace).Create, conf)
		},
	)
	if err != nil {
		return err
	}
	return ensureDaemonSet(ctx, cs, c, "flannel", ds, c.Flannel, nil)
}
