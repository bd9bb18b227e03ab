// Package addons makes a cluster's add-ons as kubeadm and upstream ship
// them: the pod network (flannel, flannel.go), kube-proxy (kubeproxy.go)
// and CoreDNS (coredns.go), each running the image the node's runtime
// already holds, so no pull happens.
//
// Ensure is idempotent. An add-on that is missing is made. One that exists
// is left as its owner changed it, with three exceptions: its pods carry
// the ID of the image they run (new content under the same name rolls
// them), its image moves to the release's on an upgrade, and an add-on made
// by an older dk8s (an older Revision) has its spec replaced by this one's,
// as 'kubeadm upgrade apply' does, keeping its image (outside an upgrade)
// and, for CoreDNS, its replicas.
package addons

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/dk8s/dk8s/internal/kubeobj"
	"github.com/dk8s/dk8s/internal/wait"
)

// Namespace is where the add-ons run.
const Namespace = "kube-system"

// Revision is the make of the add-ons' specs this package writes. It goes
// up when a spec changes in a way existing clusters should get (kubeadm's
// CoreDNS, kube-proxy's configuration file, flannel's health port): a
// rerun of dk8s start then replaces the spec of each add-on of an older
// revision. Add-ons made before revisions existed have none: revision 1.
const Revision = 2

const (
	// RevisionAnnotation records, on each add-on's workload, the Revision
	// that wrote its spec.
	RevisionAnnotation = "io.dk8s/addon-revision"
	// ImageIDAnnotation carries, on an add-on's pods, the ID of the image
	// they run, so that new content under the same name rolls them. An
	// add-on is made with it, so that its first start is not a rollout too.
	ImageIDAnnotation = "io.dk8s/image-id"
)

// Image is an image the node's runtime holds.
type Image struct {
	Name string // its canonical name, as the runtime holds it
	ID   string // its content's ID
}

// Proxy modes kube-proxy is offered in: kubeadm's iptables, and nftables,
// kube-proxy's default from v1.40.
const (
	ProxyModeIPTables = "iptables"
	ProxyModeNFTables = "nftables"
)

// ProxyModes are the modes there are, in the order --help lists them.
var ProxyModes = []string{ProxyModeIPTables, ProxyModeNFTables}

// Config is what the add-ons are made from.
type Config struct {
	Flannel, KubeProxy, CoreDNS Image
	// PodCIDR is the cluster's pod range, DNSIP the kube-dns Service's
	// cluster IP.
	PodCIDR, DNSIP string
	// Server is where the node add-ons (kube-proxy, flanneld) reach the
	// apiserver: not the kubernetes Service, which kube-proxy itself makes
	// routable.
	Server string
	// ProxyMode is kube-proxy's mode: one of ProxyModes, or "" for
	// iptables on a new cluster and, on an existing one, the mode it has.
	ProxyMode string
	// Env is what every add-on's container runs with beside its own
	// variables (a profile's GOGC), and EnvNames every name Env may ever
	// hold, so that one no longer wanted is removed. KeepEnv leaves the
	// containers' values of EnvNames as they are: a control plane that
	// joined a cluster does not change its add-ons' environment.
	Env      []corev1.EnvVar
	EnvNames []string
	KeepEnv  bool
	// Upgrade moves the add-ons' images to these; otherwise an image their
	// owner set is left alone.
	Upgrade bool
	// CoreDNSReplicas is a new CoreDNS's replicas: kubeadm's 2 for 0.
	CoreDNSReplicas int32
}

// CheckProxyMode refuses a mode that is not one of ProxyModes ("" is
// allowed: the cluster's own).
func CheckProxyMode(mode string) error {
	if mode != "" && !slices.Contains(ProxyModes, mode) {
		return fmt.Errorf("--proxy-mode %q: use one of %s", mode, strings.Join(ProxyModes, ", "))
	}
	return nil
}

// Check says what is wrong with c, if anything.
func (c Config) Check() error {
	if err := CheckProxyMode(c.ProxyMode); err != nil {
		return err
	}
	for what, img := range map[string]Image{"flannel": c.Flannel, "kube-proxy": c.KubeProxy, "CoreDNS": c.CoreDNS} {
		if img.Name == "" {
			return fmt.Errorf("no %s image given", what)
		}
	}
	return nil
}

// Ensure makes the pod network, kube-proxy and CoreDNS, or brings those
// there are to c (see the package's doc). The pod network comes first: no
// other pod can start without it.
func Ensure(ctx context.Context, cs kubernetes.Interface, c Config) error {
	if err := c.Check(); err != nil {
		return err
	}
	for _, ensure := range []func(context.Context, kubernetes.Interface, Config) error{ensureFlannel, ensureKubeProxy, ensureCoreDNS} {
		if err := ensure(ctx, cs, c); err != nil {
			return err
		}
	}
	return nil
}

// createAll runs steps in order, stopping at the first that fails.
func createAll(steps ...func() error) error {
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// meta is the metadata of an add-on's part named name, with labels.
func meta(name string, labels map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: Namespace, Labels: kubeobj.Managed(labels)}
}

// revisionOf is the Revision that wrote an add-on's spec.
func revisionOf(m metav1.ObjectMeta) int {
	n, err := strconv.Atoi(m.Annotations[RevisionAnnotation])
	if err != nil {
		return 1
	}
	return n
}

// outdated says whether existing, an add-on's workload, was written by an
// older Revision of dk8s (and is dk8s's: one its owner replaced by their
// own is left alone).
func outdated(existing metav1.ObjectMeta) bool {
	return kubeobj.IsManaged(existing.Labels) && revisionOf(existing) < Revision
}

// stamp marks m as written by this Revision.
func stamp(m *metav1.ObjectMeta) {
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	m.Annotations[RevisionAnnotation] = strconv.Itoa(Revision)
}

// container is an add-on's container with the environment c gives it
// beside its own.
func (c Config) container(ctr corev1.Container) corev1.Container {
	ctr.Env = append(ctr.Env, c.Env...)
	ctr.ImagePullPolicy = corev1.PullIfNotPresent
	return ctr
}

// carryOver keeps, in want (the spec this Revision writes), what an
// owner's existing container has that a spec replacement must not lose:
// its image outside an upgrade, and its values of c.EnvNames when c keeps
// the environment.
func (c Config) carryOver(want *corev1.Container, have []corev1.Container) {
	i := slices.IndexFunc(have, func(h corev1.Container) bool { return h.Name == want.Name })
	if i < 0 {
		return
	}
	if !c.Upgrade {
		want.Image = have[i].Image
	}
	if c.KeepEnv {
		want.Env = slices.DeleteFunc(want.Env, func(e corev1.EnvVar) bool { return slices.Contains(c.EnvNames, e.Name) })
		for _, e := range have[i].Env {
			if slices.Contains(c.EnvNames, e.Name) {
				want.Env = append(want.Env, e)
			}
		}
	}
}

// patch is the strategic merge patch of an add-on whose spec is current:
// its pods' image-ID annotation and podAnnotations, its container's environment to c's
// (unless c keeps it) and, on an upgrade, its container's image. The
// container and its variables are matched by name and the rest of the
// spec is left as it is, so a patch that changes nothing rolls nothing.
func (c Config) patch(container string, img Image, podAnnotations map[string]string) []byte {
	ctr := map[string]any{"name": container}
	if !c.KeepEnv {
		set := map[string]string{}
		for _, e := range c.Env {
			set[e.Name] = e.Value
		}
		var env []map[string]string
		for _, name := range slices.Sorted(slices.Values(c.EnvNames)) {
			if v, ok := set[name]; ok {
				env = append(env, map[string]string{"name": name, "value": v})
			} else {
				env = append(env, map[string]string{"name": name, "$patch": "delete"})
			}
		}
		if env != nil {
			ctr["env"] = env
		}
	}
	if c.Upgrade {
		ctr["image"] = img.Name
	}
	annotations := map[string]string{ImageIDAnnotation: img.ID}
	for k, v := range podAnnotations {
		annotations[k] = v
	}
	data, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{
		"metadata": map[string]any{"annotations": annotations},
		"spec":     map[string]any{"containers": []any{ctr}},
	}}})
	if err != nil {
		panic(err) // maps of strings always marshal
	}
	return data
}

// ensureDaemonSet makes want, or brings the DaemonSet there is to c: its
// spec replaced when an older Revision wrote it, else patched (patch, with
// podAnnotations).
func ensureDaemonSet(ctx context.Context, cs kubernetes.Interface, c Config, what string, want *appsv1.DaemonSet, img Image, podAnnotations map[string]string) error {
	api := cs.AppsV1().DaemonSets(Namespace)
	have, err := api.Get(ctx, want.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return kubeobj.Create(ctx, "the "+what+" daemon set", api.Create, want)
	case err != nil:
		return fmt.Errorf("reading %s: %w", what, err)
	case outdated(have.ObjectMeta):
		c.carryOver(&want.Spec.Template.Spec.Containers[0], have.Spec.Template.Spec.Containers)
		have.Spec = want.Spec
		stamp(&have.ObjectMeta)
		if _, err := api.Update(ctx, have, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("upgrading %s's spec: %w", what, err)
		}
		return nil
	}
	if _, err := api.Patch(ctx, want.Name, types.StrategicMergePatchType, c.patch(want.Spec.Template.Spec.Containers[0].Name, img, podAnnotations), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("updating %s: %w", what, err)
	}
	return nil
}

// nodeDaemonSet is an add-on that runs on every node, on the host's
// network, whatever the node's taints: kube-proxy and flannel. Its pods
// carry img's ID and run ctr with volumes.
func nodeDaemonSet(m metav1.ObjectMeta, app map[string]string, serviceAccount string, img Image, ctr corev1.Container, volumes []corev1.Volume) *appsv1.DaemonSet {
	stamp(&m)
	return &appsv1.DaemonSet{
		ObjectMeta: m,
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: app},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: app, Annotations: map[string]string{ImageIDAnnotation: img.ID}},
				Spec: corev1.PodSpec{
					HostNetwork:        true,
					ServiceAccountName: serviceAccount,
					PriorityClassName:  "system-node-critical",
					NodeSelector:       map[string]string{corev1.LabelOSStable: "linux"},
					Tolerations:        []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					Containers:         []corev1.Container{ctr},
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

// Wait waits until flannel, kube-proxy and CoreDNS have rolled out: every
// pod of the current spec scheduled and ready (after an upgrade the old
// pods are ready too until they are replaced), CoreDNS with at least one
// replica ready. poll is how often it looks.
func Wait(ctx context.Context, cs kubernetes.Interface, poll, timeout time.Duration) error {
	err := wait.Until(ctx, poll, timeout, func(ctx context.Context) (bool, string, error) {
		for _, name := range []string{FlannelDaemonSet, KubeProxyDaemonSet} {
			ds, err := cs.AppsV1().DaemonSets(Namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, name + ": " + err.Error(), nil
			}
			if msg := daemonSetPending(ds); msg != "" {
				return false, name + ": " + msg + podTrouble(ctx, cs, ds.Spec.Selector), nil
			}
		}
		dep, err := cs.AppsV1().Deployments(Namespace).Get(ctx, CoreDNSDeployment, metav1.GetOptions{})
		if err != nil {
			return false, "coredns: " + err.Error(), nil
		}
		st := dep.Status
		if st.ObservedGeneration < dep.Generation || dep.Spec.Replicas == nil || st.UpdatedReplicas != *dep.Spec.Replicas ||
			st.ReadyReplicas < 1 || st.Replicas != st.UpdatedReplicas {
			return false, fmt.Sprintf("coredns: %d updated, %d ready of %d", st.UpdatedReplicas, st.ReadyReplicas, st.Replicas) + podTrouble(ctx, cs, dep.Spec.Selector), nil
		}
		return true, "", nil
	})
	if err != nil {
		return fmt.Errorf("the add-ons did not come up: %w; see 'kubectl -n %s get pods' and 'dk8s logs kubelet'", err, Namespace)
	}
	return nil
}

// podTrouble is why an add-on's pod is not running, as "; pod NAME:
// REASON: MESSAGE" (a container that cannot be made, an image that cannot
// be had, a crash with its exit), or "" when none says so: what a user would
// otherwise dig out of 'kubectl describe'.
func podTrouble(ctx context.Context, cs kubernetes.Interface, selector *metav1.LabelSelector) string {
	if selector == nil {
		return ""
	}
	pods, err := cs.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(selector)})
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
