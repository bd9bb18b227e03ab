package bootstrap

import (
	"context"
	"fmt"
	"path/filepath"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
		ObjectMeta: metav1.ObjectMeta{Name: AdminGroup, Labels: map[string]string{"app.kubernetes.io/managed-by": "dk8s"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: AdminGroup}},
	}
	_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("binding %s to cluster-admin: %w", AdminGroup, err)
	}
	return nil
}
