package addons

import (
	"context"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/dk8s/dk8s/internal/kubeobj"
)

const (
	CoreDNSDeployment = "coredns"
	// DNSService is the cluster's DNS Service, under kubeadm's name.
	DNSService = "kube-dns"
	// coreDNSReplicas is kubeadm's.
	coreDNSReplicas = 2
	// coreDNSMetricsPort is CoreDNS's prometheus plugin's port.
	coreDNSMetricsPort = 9153
)

// corefile is kubeadm's: the cluster's names are not cached by CoreDNS
// (the kubernetes plugin answers them from its own watch), everything else
// for 30 s, and the metrics on :9153.
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
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loop
    reload
    loadbalance
}
`

// corefileRevision1 is the Corefile add-ons of revision 1 were made with:
// one still holding it is replaced by corefile; one its owner changed is
// theirs.
const corefileRevision1 = `.:53 {
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

var dnsApp = map[string]string{"k8s-app": "kube-dns"}

// coreDNSDeployment is CoreDNS as kubeadm deploys it: replicas kept apart
// by a preferred anti-affinity, probed for liveness (/health) and
// readiness (/ready), its metrics port named, kubeadm's resources, and as
// little privilege as binding :53 needs (every capability dropped but
// NET_BIND_SERVICE, a read-only root, no escalation), which upstream's
// image, running as user 65532 with that file capability on /coredns, is
// made for.
func coreDNSDeployment(c Config) *appsv1.Deployment {
	replicas := c.CoreDNSReplicas
	if replicas == 0 {
		replicas = coreDNSReplicas
	}
	no, yes := false, true
	maxUnavailable := intstr.FromInt32(1)
	m := meta(CoreDNSDeployment, dnsApp)
	stamp(&m)
	return &appsv1.Deployment{
		ObjectMeta: m,
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: dnsApp},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &maxUnavailable}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: dnsApp, Annotations: map[string]string{ImageIDAnnotation: c.CoreDNS.ID}},
				Spec: corev1.PodSpec{
					ServiceAccountName: "coredns",
					PriorityClassName:  "system-cluster-critical",
					DNSPolicy:          corev1.DNSDefault,
					NodeSelector:       map[string]string{corev1.LabelOSStable: "linux"},
					Tolerations: []corev1.Toleration{
						{Key: "CriticalAddonsOnly", Operator: corev1.TolerationOpExists},
						{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule},
					},
					Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
						PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 100, PodAffinityTerm: corev1.PodAffinityTerm{
							LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k8s-app", Operator: metav1.LabelSelectorOpIn, Values: []string{"kube-dns"}}}},
							TopologyKey:   corev1.LabelHostname,
						}}},
					}},
					Containers: []corev1.Container{c.container(corev1.Container{
						Name:  "coredns",
						Image: c.CoreDNS.Name,
						Args:  []string{"-conf", "/etc/coredns/Corefile"},
						Resources: corev1.ResourceRequirements{
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("170Mi")},
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("70Mi")},
						},
						Ports: []corev1.ContainerPort{
							{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
							{Name: "dns-tcp", ContainerPort: 53, Protocol: corev1.ProtocolTCP},
							{Name: "metrics", ContainerPort: coreDNSMetricsPort, Protocol: corev1.ProtocolTCP},
						},
						LivenessProbe: &corev1.Probe{
							ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/health", Port: intstr.FromInt32(8080)}},
							InitialDelaySeconds: 60, TimeoutSeconds: 5, SuccessThreshold: 1, FailureThreshold: 5,
						},
						// Every 2 s, as k3s's: kubelet first asks at a random
						// point of the period when it has just started (kubeadm's
						// 10 s held a new node's start back by up to 10 s), and
						// CoreDNS is ready within a second.
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8181)}}, PeriodSeconds: 2},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: &no,
							Capabilities:             &corev1.Capabilities{Add: []corev1.Capability{"NET_BIND_SERVICE"}, Drop: []corev1.Capability{"ALL"}},
							ReadOnlyRootFilesystem:   &yes,
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "config-volume", MountPath: "/etc/coredns", ReadOnly: true}},
					})},
					Volumes: []corev1.Volume{{Name: "config-volume", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
						LocalObjectReference: corev1.LocalObjectReference{Name: "coredns"},
						Items:                []corev1.KeyToPath{{Key: "Corefile", Path: "Corefile"}},
					}}}},
				},
			},
		},
	}
}

// dnsService is kube-dns at the cluster's DNS address, with CoreDNS's
// metrics port.
func dnsService(c Config) *corev1.Service {
	m := meta(DNSService, map[string]string{"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"})
	m.Annotations = map[string]string{"prometheus.io/port": fmt.Sprint(coreDNSMetricsPort), "prometheus.io/scrape": "true"}
	return &corev1.Service{ObjectMeta: m, Spec: corev1.ServiceSpec{ClusterIP: c.DNSIP, Selector: dnsApp, Ports: dnsServicePorts()}}
}

func dnsServicePorts() []corev1.ServicePort {
	return []corev1.ServicePort{
		{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
		{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(53)},
		{Name: "metrics", Port: coreDNSMetricsPort, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(coreDNSMetricsPort)},
	}
}

// ensureCoreDNS makes CoreDNS's parts unless they exist, and brings those
// of an older dk8s to c: the Corefile (unless its owner changed it), the
// Service's metrics port, the Deployment's spec.
func ensureCoreDNS(ctx context.Context, cs kubernetes.Interface, c Config) error {
	core, rbac := cs.CoreV1(), cs.RbacV1()
	err := createAll(
		func() error {
			return kubeobj.Create(ctx, "the coredns service account", core.ServiceAccounts(Namespace).Create, &corev1.ServiceAccount{ObjectMeta: meta("coredns", nil)})
		},
		func() error {
			return kubeobj.Create(ctx, "CoreDNS's role", rbac.ClusterRoles().Create, &rbacv1.ClusterRole{
				ObjectMeta: metav1.ObjectMeta{Name: "system:coredns", Labels: kubeobj.Managed(nil)},
				Rules: []rbacv1.PolicyRule{
					{APIGroups: []string{""}, Resources: []string{"endpoints", "services", "pods", "namespaces"}, Verbs: []string{"list", "watch"}},
					{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
				},
			})
		},
		func() error {
			return kubeobj.Create(ctx, "CoreDNS's role binding", rbac.ClusterRoleBindings().Create, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "system:coredns", Labels: kubeobj.Managed(nil)},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:coredns"},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "coredns", Namespace: Namespace}},
			})
		},
		func() error { return ensureCorefile(ctx, cs) },
		func() error { return ensureDNSService(ctx, cs, c) },
	)
	if err != nil {
		return err
	}
	api := cs.AppsV1().Deployments(Namespace)
	want := coreDNSDeployment(c)
	have, err := api.Get(ctx, CoreDNSDeployment, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return kubeobj.Create(ctx, "the CoreDNS deployment", api.Create, want)
	case err != nil:
		return fmt.Errorf("reading CoreDNS: %w", err)
	case outdated(have.ObjectMeta):
		c.carryOver(&want.Spec.Template.Spec.Containers[0], have.Spec.Template.Spec.Containers)
		replicas := have.Spec.Replicas // kubeadm keeps a scaled CoreDNS's
		have.Spec = want.Spec
		if replicas != nil && *replicas != 1 { // 1 was revision 1's default
			have.Spec.Replicas = replicas
		}
		stamp(&have.ObjectMeta)
		if _, err := api.Update(ctx, have, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("upgrading CoreDNS's spec: %w", err)
		}
		return nil
	}
	if _, err := api.Patch(ctx, CoreDNSDeployment, types.StrategicMergePatchType, c.patch("coredns", c.CoreDNS, nil), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("updating CoreDNS: %w", err)
	}
	return nil
}

// ensureCorefile makes CoreDNS's ConfigMap, or replaces a Corefile that
// is revision 1's as it was made.
func ensureCorefile(ctx context.Context, cs kubernetes.Interface) error {
	api := cs.CoreV1().ConfigMaps(Namespace)
	cm, err := api.Get(ctx, "coredns", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return kubeobj.Create(ctx, "CoreDNS's config", api.Create, &corev1.ConfigMap{ObjectMeta: meta("coredns", nil), Data: map[string]string{"Corefile": corefile}})
	}
	if err != nil {
		return fmt.Errorf("reading CoreDNS's config: %w", err)
	}
	if cm.Data["Corefile"] != corefileRevision1 {
		return nil
	}
	cm.Data["Corefile"] = corefile
	if _, err := api.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("upgrading CoreDNS's Corefile: %w", err)
	}
	return nil
}

// ensureDNSService makes kube-dns, or gives one without it the metrics
// port. It is read first: creating it again fails on its cluster IP, which
// it already holds, before the name is compared.
func ensureDNSService(ctx context.Context, cs kubernetes.Interface, c Config) error {
	api := cs.CoreV1().Services(Namespace)
	svc, err := api.Get(ctx, DNSService, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return kubeobj.Create(ctx, "the kube-dns service", api.Create, dnsService(c))
	}
	if err != nil {
		return fmt.Errorf("reading the kube-dns service: %w", err)
	}
	if !kubeobj.IsManaged(svc.Labels) || slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "metrics" }) {
		return nil
	}
	want := dnsService(c)
	svc.Spec.Ports = append(svc.Spec.Ports, want.Spec.Ports[2])
	for k, v := range want.Annotations {
		if svc.Annotations == nil {
			svc.Annotations = map[string]string{}
		}
		svc.Annotations[k] = v
	}
	if _, err := api.Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("adding CoreDNS's metrics port to the kube-dns service: %w", err)
	}
	return nil
}
