package bootstrap

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dk8s/dk8s/internal/kubeobj"
	"github.com/dk8s/dk8s/pkg/token"
)

// AdminGroup is the group of admin.conf's certificate. It is bound to
// cluster-admin by a ClusterRoleBinding, as kubeadm does with its own
// group, rather than being system:masters: a binding can be revoked, a
// certificate in system:masters cannot. super-admin.conf (system:masters)
// exists only to make that binding and for break-glass use.
const AdminGroup = "dk8s:cluster-admins"

// ensureAdminBinding binds AdminGroup to cluster-admin, through the
// super-admin identity, if the binding is not there yet.
func ensureAdminBinding(ctx context.Context, cfg Config, opts StartOptions) error {
	cs, err := opts.client(filepath.Join(cfg.Dir, "super-admin.conf"))
	if err != nil {
		return err
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: AdminGroup, Labels: kubeobj.Managed(nil)},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: AdminGroup}},
	}
	_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("binding %s to cluster-admin: %w", AdminGroup, err)
	}
	return nil
}

// ensureJoinable makes the cluster joinable by token: the signed
// cluster-info and the join RBAC kubeadm makes (token.EnsureClusterInfo),
// the cluster's ranges for joining machines and nodes to read
// (clusterSettingsName), and a node's right to delete its own Node when it
// leaves.
func ensureJoinable(ctx context.Context, cfg Config, opts StartOptions) error {
	cs, err := opts.client(filepath.Join(cfg.Dir, "super-admin.conf"))
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(filepath.Join(cfg.PKIDir(), "ca.crt"))
	if err != nil {
		return err
	}
	if err := token.EnsureClusterInfo(ctx, cs, cfg.ClusterURL(), caPEM); err != nil {
		return err
	}
	data := map[string]string{"clusterName": cfg.ClusterName, "serviceCIDR": cfg.ServiceCIDR, "podCIDR": cfg.PodCIDR}
	var old map[string]string
	if cur, err := cs.CoreV1().ConfigMaps(addonNS).Get(ctx, clusterSettingsName, metav1.GetOptions{}); err == nil {
		old = cur.Data
	}
	for k, v := range haSettings(cfg, old) {
		data[k] = v
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: clusterSettingsName, Namespace: addonNS, Labels: kubeobj.Managed(nil)}, Data: data}
	if _, err := cs.CoreV1().ConfigMaps(addonNS).Update(ctx, cm, metav1.UpdateOptions{}); apierrors.IsNotFound(err) {
		_, err = cs.CoreV1().ConfigMaps(addonNS).Create(ctx, cm, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("writing the cluster's settings: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("writing the cluster's settings: %w", err)
	}
	reader, certs, lbRole := "dk8s:read-cluster-settings", "dk8s:read-control-plane-certs", "dk8s:apiserver-lb"
	// Nodes may not delete Node objects: one that could would delete and
	// make itself again to shed a cordon or a taint, and a token holder
	// posing as another node would delete that one. Clusters made by an
	// earlier dk8s granted it to system:nodes; it is taken back.
	if err := removeNodeLeave(ctx, cs); err != nil {
		return err
	}
	for _, err := range []error{
		kubeobj.Create(ctx, "the cluster settings' role", cs.RbacV1().Roles(addonNS).Create, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: reader, Namespace: addonNS, Labels: kubeobj.Managed(nil)},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{clusterSettingsName}, Verbs: []string{"get"}}},
		}),
		kubeobj.Create(ctx, "the cluster settings' role binding", cs.RbacV1().RoleBindings(addonNS).Create, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: reader, Namespace: addonNS, Labels: kubeobj.Managed(nil)},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: reader},
			Subjects: []rbacv1.Subject{
				{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: token.Group},
				{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "system:nodes"},
			},
		}),
		// A node's apiserver balancer follows the control planes in the
		// kubernetes Service's EndpointSlices, with the node's identity.
		kubeobj.Create(ctx, "the balancer's role", cs.RbacV1().Roles(metav1.NamespaceDefault).Create, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: lbRole, Namespace: metav1.NamespaceDefault, Labels: kubeobj.Managed(nil)},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list"}}},
		}),
		kubeobj.Create(ctx, "the balancer's role binding", cs.RbacV1().RoleBindings(metav1.NamespaceDefault).Create, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: lbRole, Namespace: metav1.NamespaceDefault, Labels: kubeobj.Managed(nil)},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: lbRole},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "system:nodes"}},
		}),
		// A machine joining as a control plane reads the sealed
		// certificates with its token; only the certificate key opens them.
		kubeobj.Create(ctx, "the control-plane certificates' role", cs.RbacV1().Roles(addonNS).Create, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: certs, Namespace: addonNS, Labels: kubeobj.Managed(nil)},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{certsSecret}, Verbs: []string{"get"}}},
		}),
		kubeobj.Create(ctx, "the control-plane certificates' role binding", cs.RbacV1().RoleBindings(addonNS).Create, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: certs, Namespace: addonNS, Labels: kubeobj.Managed(nil)},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: certs},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: token.Group}},
		}),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// nodeLeave is the role an earlier dk8s granted system:nodes, to delete
// Node objects.
const nodeLeave = "dk8s:node-leave"

// removeNodeLeave deletes nodeLeave's binding and role where they are.
func removeNodeLeave(ctx context.Context, cs kubeClient) error {
	if err := cs.RbacV1().ClusterRoleBindings().Delete(ctx, nodeLeave, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("taking back the nodes' right to delete nodes: %w", err)
	}
	if err := cs.RbacV1().ClusterRoles().Delete(ctx, nodeLeave, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("taking back the nodes' right to delete nodes: %w", err)
	}
	return nil
}
