package addons

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/dk8s/dk8s/internal/kubeobj"
)

const (
	KubeProxyDaemonSet = "kube-proxy"
	kubeProxyConfigMap = "kube-proxy"
	// kubeProxyConfigKey is kube-proxy's configuration file in its
	// ConfigMap, as kubeadm names it.
	kubeProxyConfigKey = "config.conf"
	// ProxyModeAnnotation carries, on kube-proxy's pods, the mode they run
	// in: changing it rolls them onto the new mode.
	ProxyModeAnnotation = "io.dk8s/proxy-mode"
)

// KubeProxyPorts are kube-proxy's metrics and health ports, on the node's
// loopback: checked free before a node starts.
var KubeProxyPorts = []int{10249, 10256}

// kubeProxyFile is kube-proxy's configuration, as kubeadm writes it, in
// mode: its metrics and health ports on loopback, the host's conntrack
// table size left alone.
func kubeProxyFile(c Config, mode string) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
clusterCIDR: %s
conntrack:
  maxPerCore: 0
healthzBindAddress: 127.0.0.1:%d
metricsBindAddress: 127.0.0.1:%d
mode: %s
`, c.PodCIDR, KubeProxyPorts[1], KubeProxyPorts[0], mode)
}

// kubeProxyKubeconfig reaches the apiserver at c.Server: the service IP
// it would otherwise use is what kube-proxy itself makes routable.
func kubeProxyKubeconfig(c Config) string {
	return fmt.Sprintf(`apiVersion: v1
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
`, c.Server)
}

// modeOf is the mode of kube-proxy's configuration file, "" when it is not
// one.
func modeOf(file string) string {
	var conf struct {
		Mode string `json:"mode"`
	}
	if yaml.Unmarshal([]byte(file), &conf) != nil {
		return ""
	}
	return conf.Mode
}

// withMode is kube-proxy's configuration file with its mode set, the rest
// as its owner left it.
func withMode(file, mode string) (string, error) {
	var conf map[string]any
	if err := yaml.Unmarshal([]byte(file), &conf); err != nil {
		return "", fmt.Errorf("kube-proxy's %s is not YAML: %w", kubeProxyConfigKey, err)
	}
	if conf == nil {
		conf = map[string]any{}
	}
	conf["mode"] = mode
	out, err := yaml.Marshal(conf)
	return string(out), err
}

// ensureKubeProxyConfig makes kube-proxy's ConfigMap, gives one of an
// older dk8s its configuration file, and sets the file's mode to
// c.ProxyMode when one is asked for. It returns the mode kube-proxy is to
// run in.
func ensureKubeProxyConfig(ctx context.Context, cs kubernetes.Interface, c Config) (string, error) {
	api := cs.CoreV1().ConfigMaps(Namespace)
	mode := c.ProxyMode
	if mode == "" {
		mode = ProxyModeIPTables
	}
	cm, err := api.Get(ctx, kubeProxyConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cm = &corev1.ConfigMap{ObjectMeta: meta(kubeProxyConfigMap, map[string]string{"app": "kube-proxy"}), Data: map[string]string{
			"kubeconfig.conf": kubeProxyKubeconfig(c), kubeProxyConfigKey: kubeProxyFile(c, mode),
		}}
		return mode, kubeobj.Create(ctx, "kube-proxy's config", api.Create, cm)
	}
	if err != nil {
		return "", fmt.Errorf("reading kube-proxy's config: %w", err)
	}
	file, ok := cm.Data[kubeProxyConfigKey]
	switch {
	case !ok:
		file = kubeProxyFile(c, mode)
	case c.ProxyMode != "" && modeOf(file) != c.ProxyMode:
		if file, err = withMode(file, c.ProxyMode); err != nil {
			return "", err
		}
	default:
		if mode = modeOf(file); mode == "" {
			mode = ProxyModeIPTables // kube-proxy's default until v1.40
		}
		return mode, nil
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[kubeProxyConfigKey] = file
	if _, err := api.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		return "", fmt.Errorf("writing kube-proxy's configuration: %w", err)
	}
	return mode, nil
}

// kubeProxyDaemonSet is kube-proxy on every node, as kubeadm deploys it,
// in mode (its pods carry the mode, so that a change rolls them).
func kubeProxyDaemonSet(c Config, mode string) *appsv1.DaemonSet {
	privileged := true
	app := map[string]string{"k8s-app": "kube-proxy"}
	ds := nodeDaemonSet(meta(KubeProxyDaemonSet, app), app, "kube-proxy", c.KubeProxy, c.container(corev1.Container{
		Name:  "kube-proxy",
		Image: c.KubeProxy.Name,
		Command: []string{"/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/" + kubeProxyConfigKey,
			"--hostname-override=$(NODE_NAME)"},
		Env:             []corev1.EnvVar{fieldEnv("NODE_NAME", "spec.nodeName")},
		SecurityContext: &corev1.SecurityContext{Privileged: &privileged},
		// No /lib/modules of the host, which kubeadm mounts for IPVS mode's
		// modprobe: the iptables and nftables modes' tables and matches the
		// kernel loads by itself, and a host without that directory and a
		// read-only /usr (an immutable image, a machine container) cannot
		// have it made, so the pod would never start there.
		VolumeMounts: []corev1.VolumeMount{
			{Name: "kube-proxy", MountPath: "/var/lib/kube-proxy"},
			{Name: "xtables-lock", MountPath: "/run/xtables.lock"},
		},
	}), []corev1.Volume{
		configMapVolume("kube-proxy", kubeProxyConfigMap),
		hostPathVolume("xtables-lock", "/run/xtables.lock", corev1.HostPathFileOrCreate),
	})
	ds.Spec.Template.Annotations[ProxyModeAnnotation] = mode
	return ds
}

// ensureKubeProxy makes kube-proxy's parts unless they exist, and brings
// its configuration and DaemonSet to c.
func ensureKubeProxy(ctx context.Context, cs kubernetes.Interface, c Config) error {
	err := createAll(
		func() error {
			return kubeobj.Create(ctx, "the kube-proxy service account", cs.CoreV1().ServiceAccounts(Namespace).Create,
				&corev1.ServiceAccount{ObjectMeta: meta("kube-proxy", nil)})
		},
		func() error {
			return kubeobj.Create(ctx, "kube-proxy's role binding", cs.RbacV1().ClusterRoleBindings().Create, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "dk8s:node-proxier", Labels: kubeobj.Managed(nil)},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:node-proxier"},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "kube-proxy", Namespace: Namespace}},
			})
		},
	)
	if err != nil {
		return err
	}
	mode, err := ensureKubeProxyConfig(ctx, cs, c)
	if err != nil {
		return err
	}
	return ensureDaemonSet(ctx, cs, c, "kube-proxy", kubeProxyDaemonSet(c, mode), c.KubeProxy, map[string]string{ProxyModeAnnotation: mode})
}
