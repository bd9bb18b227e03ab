package token

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/clientcmd"
)

func clusterInfoMap(t *testing.T, cs *fake.Clientset) *corev1.ConfigMap {
	t.Helper()
	cm, err := cs.CoreV1().ConfigMaps("kube-public").Get(context.Background(), "cluster-info", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("no kube-public/cluster-info: %v", err)
	}
	return cm
}

func TestEnsureClusterInfoPublishesServerAndCA(t *testing.T) {
	ca := newCA(t)
	cs := fake.NewClientset()
	if err := EnsureClusterInfo(context.Background(), cs, "https://192.0.2.10:6443", ca.pem); err != nil {
		t.Fatal(err)
	}
	cm := clusterInfoMap(t, cs)
	if cm.Labels["app.kubernetes.io/managed-by"] != "dk8s" || len(cm.Data) != 1 {
		t.Errorf("cluster-info: labels %v, keys %v", cm.Labels, keys(cm.Data))
	}
	kc, err := clientcmd.Load([]byte(cm.Data["kubeconfig"]))
	if err != nil {
		t.Fatal(err)
	}
	c := kc.Clusters[""]
	if len(kc.Clusters) != 1 || c == nil || c.Server != "https://192.0.2.10:6443" || string(c.CertificateAuthorityData) != string(ca.pem) {
		t.Errorf("cluster-info's kubeconfig should hold one cluster, named \"\" as kubeadm's, with the server and CA:\n%s", cm.Data["kubeconfig"])
	}
	if len(kc.AuthInfos) != 0 || len(kc.Contexts) != 0 {
		t.Errorf("cluster-info's kubeconfig holds users or contexts:\n%s", cm.Data["kubeconfig"])
	}
}

func TestEnsureClusterInfoIsIdempotentAndKeepsSignatures(t *testing.T) {
	ca, ctx := newCA(t), context.Background()
	cs := fake.NewClientset()
	if err := EnsureClusterInfo(ctx, cs, "https://192.0.2.10:6443", ca.pem); err != nil {
		t.Fatal(err)
	}
	// The bootstrapsigner signs it.
	cm := clusterInfoMap(t, cs)
	cm.Data["jws-kubeconfig-abcdef"] = "sig"
	if _, err := cs.CoreV1().ConfigMaps("kube-public").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cs.ClearActions()
	if err := EnsureClusterInfo(ctx, cs, "https://192.0.2.10:6443", ca.pem); err != nil {
		t.Fatal(err)
	}
	for _, a := range cs.Actions() {
		if a.GetVerb() == "update" || a.GetVerb() == "delete" || a.GetVerb() == "patch" {
			t.Errorf("a second run with the same server and CA changed something: %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}

	if err := EnsureClusterInfo(ctx, cs, "https://192.0.2.20:6443", ca.pem); err != nil {
		t.Fatal(err)
	}
	cm = clusterInfoMap(t, cs)
	kc, _ := clientcmd.Load([]byte(cm.Data["kubeconfig"]))
	if kc == nil || kc.Clusters[""] == nil || kc.Clusters[""].Server != "https://192.0.2.20:6443" {
		t.Errorf("a new server was not published:\n%s", cm.Data["kubeconfig"])
	}
	if cm.Data["jws-kubeconfig-abcdef"] != "sig" {
		t.Errorf("the update dropped the bootstrapsigner's signatures: %v", keys(cm.Data))
	}
}

func TestEnsureClusterInfoMakesTheJoinRBAC(t *testing.T) {
	ctx, cs := context.Background(), fake.NewClientset()
	for range 2 {
		if err := EnsureClusterInfo(ctx, cs, "https://192.0.2.10:6443", newCA(t).pem); err != nil {
			t.Fatal(err)
		}
	}
	role, err := cs.RbacV1().Roles("kube-public").Get(ctx, "dk8s:bootstrap-signer-clusterinfo", metav1.GetOptions{})
	if err != nil || len(role.Rules) != 1 || !slices.Equal(role.Rules[0].ResourceNames, []string{"cluster-info"}) ||
		!slices.Equal(role.Rules[0].Verbs, []string{"get"}) || !slices.Equal(role.Rules[0].Resources, []string{"configmaps"}) {
		t.Errorf("cluster-info's role should let get cluster-info alone: %+v, %v", role, err)
	}
	rb, err := cs.RbacV1().RoleBindings("kube-public").Get(ctx, "dk8s:bootstrap-signer-clusterinfo", metav1.GetOptions{})
	if err != nil || rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != "dk8s:bootstrap-signer-clusterinfo" ||
		len(rb.Subjects) != 1 || rb.Subjects[0].Kind != "User" || rb.Subjects[0].Name != "system:anonymous" {
		t.Errorf("cluster-info's role should be bound to system:anonymous: %+v, %v", rb, err)
	}
	for name, want := range map[string][2]string{
		"dk8s:kubelet-bootstrap":                     {"system:node-bootstrapper", Group},
		"dk8s:node-autoapprove-bootstrap":            {"system:certificates.k8s.io:certificatesigningrequests:nodeclient", Group},
		"dk8s:node-autoapprove-certificate-rotation": {"system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", "system:nodes"},
		"dk8s:get-nodes":                             {"dk8s:get-nodes", Group},
	} {
		crb, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("no cluster role binding %s: %v", name, err)
			continue
		}
		if crb.RoleRef.Kind != "ClusterRole" || crb.RoleRef.Name != want[0] || len(crb.Subjects) != 1 ||
			crb.Subjects[0] != (rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: "Group", Name: want[1]}) || crb.Labels["app.kubernetes.io/managed-by"] != "dk8s" {
			t.Errorf("%s binds %+v to %+v, want %s to group %s", name, crb.RoleRef, crb.Subjects, want[0], want[1])
		}
	}
	cr, err := cs.RbacV1().ClusterRoles().Get(ctx, "dk8s:get-nodes", metav1.GetOptions{})
	if err != nil || len(cr.Rules) != 1 || !slices.Equal(cr.Rules[0].Verbs, []string{"get"}) || !slices.Equal(cr.Rules[0].Resources, []string{"nodes"}) {
		t.Errorf("dk8s:get-nodes should let get nodes alone: %+v, %v", cr, err)
	}
}

func TestEnsureClusterInfoRefusesABadCA(t *testing.T) {
	err := EnsureClusterInfo(context.Background(), fake.NewClientset(), "https://192.0.2.10:6443", []byte("not a PEM"))
	if err == nil || err.Error() != "the cluster CA: no PEM certificate in it" {
		t.Errorf("EnsureClusterInfo with a CA that is not PEM: %v", err)
	}
}
