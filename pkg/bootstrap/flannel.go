package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dk8s/dk8s/internal/atomicfile"
	"github.com/dk8s/dk8s/internal/wait"
	"github.com/dk8s/dk8s/pkg/host"
)

// The pod network is flannel with its VXLAN backend, as the kubeadm
// tutorials deploy it: flanneld on every node (a DaemonSet on the host's
// network) takes the node's pod range from the controller-manager's
// allocation (--kube-subnet-mgr) and routes every other node's range
// through a VXLAN device. The node's CNI configuration is what flannel's own
// CNI plugin would derive from flanneld's lease (a bridge on the node's
// range, the overlay's MTU), written by dk8s: see ensureCNI.
const (
	flannelDaemonSet = "kube-flannel-ds"
	flannelContainer = "kube-flannel"
)

// flannelObjects are flannel's service account, its RBAC (kube-flannel.yml's
// own rules), its net-conf and its DaemonSet, reaching the apiserver at
// server's address rather than through the kubernetes service, which
// kube-proxy may not have made routable yet on a new node.
func flannelObjects(cfg Config, image, imageID string) (*corev1.ServiceAccount, *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding, *corev1.ConfigMap, *appsv1.DaemonSet) {
	serverURL, _ := url.Parse(addonServer(cfg))
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: addonNS, Labels: map[string]string{"app": "flannel", "app.kubernetes.io/managed-by": "dk8s"}}
	}
	sa := &corev1.ServiceAccount{ObjectMeta: meta("flannel")}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "dk8s:flannel", Labels: managed},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}},
			{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"nodes/status"}, Verbs: []string{"patch"}},
		},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "dk8s:flannel", Labels: managed},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "dk8s:flannel"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "flannel", Namespace: addonNS}},
	}
	conf := &corev1.ConfigMap{ObjectMeta: meta("kube-flannel-cfg"), Data: map[string]string{
		"net-conf.json": fmt.Sprintf(`{"Network": %q, "Backend": {"Type": "vxlan"}}`, cfg.PodCIDR),
	}}
	ds := nodeDaemonSet(meta(flannelDaemonSet), map[string]string{"app": "flannel"}, "flannel", imageID, corev1.Container{
		Name:    flannelContainer,
		Image:   image,
		Command: []string{"/opt/bin/flanneld"},
		Args:    []string{"--ip-masq", "--kube-subnet-mgr"},
		Env: append([]corev1.EnvVar{
			fieldEnv("POD_NAME", "metadata.name"), fieldEnv("POD_NAMESPACE", "metadata.namespace"),
			{Name: "EVENT_QUEUE_DEPTH", Value: "5000"},
			{Name: "KUBERNETES_SERVICE_HOST", Value: serverURL.Hostname()},
			{Name: "KUBERNETES_SERVICE_PORT", Value: serverURL.Port()},
		}, cfg.Profile.podEnv()...),
		SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}}},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "run", MountPath: filepath.Dir(host.FlannelSubnetFile)},
			{Name: "flannel-cfg", MountPath: "/etc/kube-flannel/"},
			{Name: "xtables-lock", MountPath: "/run/xtables.lock"},
		},
	}, []corev1.Volume{
		hostPathVolume("run", filepath.Dir(host.FlannelSubnetFile), corev1.HostPathDirectoryOrCreate),
		configMapVolume("flannel-cfg", "kube-flannel-cfg"),
		hostPathVolume("xtables-lock", "/run/xtables.lock", corev1.HostPathFileOrCreate),
	})
	return sa, role, binding, conf, ds
}

// ensureFlannel creates flannel's objects unless they exist.
func ensureFlannel(ctx context.Context, cs kubeClient, cfg Config, image, imageID string) error {
	sa, role, binding, conf, ds := flannelObjects(cfg, image, imageID)
	for _, err := range []error{
		create(ctx, "flannel's service account", cs.CoreV1().ServiceAccounts(addonNS).Create, sa),
		create(ctx, "flannel's role", cs.RbacV1().ClusterRoles().Create, role),
		create(ctx, "flannel's role binding", cs.RbacV1().ClusterRoleBindings().Create, binding),
		create(ctx, "flannel's config", cs.CoreV1().ConfigMaps(addonNS).Create, conf),
		create(ctx, "the flannel daemon set", cs.AppsV1().DaemonSets(addonNS).Create, ds),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// cniConfigPath is the node's CNI network, in the directory the runtime
// watches (host.RuntimeConfig).
func cniConfigPath(dir string) string { return filepath.Join(dir, "cni", "10-dk8s.conflist") }

// ensureCNI waits until flanneld on this node holds its lease, then writes
// the node's CNI network from it; the runtime picks it up, and kubelet
// reports the node Ready. Until then no pod but those on the host's
// network can start, as with flannel's own plugin.
func ensureCNI(ctx context.Context, dir string, timeout time.Duration) (host.FlannelNetwork, error) {
	var n host.FlannelNetwork
	err := wait.Until(ctx, pollInterval, timeout, func(context.Context) (bool, string, error) {
		var err error
		n, err = host.ReadFlannelSubnet(host.FlannelSubnetFile)
		if errors.Is(err, os.ErrNotExist) {
			return false, "flanneld has not written " + host.FlannelSubnetFile + " yet", nil
		}
		if err != nil {
			return false, err.Error(), nil
		}
		if _, _, err := net.ParseCIDR(n.Subnet); err != nil {
			return false, err.Error(), nil
		}
		return true, "", nil
	})
	if err != nil {
		return n, fmt.Errorf("the pod network did not come up on this node: %w; see 'kubectl -n %s logs ds/%s' and 'kubectl -n %s get pods -o wide'", err, addonNS, flannelDaemonSet, addonNS)
	}
	_, err = atomicfile.WriteIfChanged(cniConfigPath(dir), []byte(host.CNIConfig(n)), 0o644)
	return n, err
}
