package token

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/retry"
)

// The cluster-info ConfigMap of k8s.io/cluster-bootstrap/token/api: a
// kubeconfig naming the apiserver and its CA, readable without
// credentials, and one detached signature of it per signing token.
const (
	clusterInfoNamespace = "kube-public"
	clusterInfoName      = "cluster-info"
	kubeconfigKey        = "kubeconfig"
	signaturePrefix      = "jws-kubeconfig-"
)

// clusterInfoRole lets anyone read cluster-info, and nothing else: what
// it holds is public, and its signatures are what make it trustworthy.
const clusterInfoRole = "dk8s:bootstrap-signer-clusterinfo"

// EnsureClusterInfo publishes, in the cluster cs talks to, what a joining
// host needs: cluster-info pointing at server and holding caPEM (its
// kubeconfig is rewritten only when either changed, and the bootstrapsigner's
// signatures are kept, so it re-signs only then), anonymous read access
// to it, and kubeadm's join RBAC for Group: post certificate requests and
// have them approved, read nodes (so a join can refuse a name in use), and
// let nodes renew their own certificates. RBAC objects already there are
// kept as they are. Running it again changes nothing.
func EnsureClusterInfo(ctx context.Context, cs kubernetes.Interface, server string, caPEM []byte) error {
	if _, err := parseCertsPEM(caPEM); err != nil {
		return fmt.Errorf("the cluster CA: %w", err)
	}
	kc, err := clusterInfoKubeconfig(server, caPEM)
	if err != nil {
		return err
	}
	if err := ensureClusterInfoMap(ctx, cs, kc, server, caPEM); err != nil {
		return err
	}
	return ensureJoinRBAC(ctx, cs)
}

// clusterInfoKubeconfig is cluster-info's kubeconfig as kubeadm writes it:
// one cluster, named "", with no user or context.
func clusterInfoKubeconfig(server string, caPEM []byte) (string, error) {
	data, err := clientcmd.Write(clientcmdapi.Config{Clusters: map[string]*clientcmdapi.Cluster{
		"": {Server: server, CertificateAuthorityData: caPEM},
	}})
	if err != nil {
		return "", fmt.Errorf("writing cluster-info's kubeconfig: %w", err)
	}
	return string(data), nil
}

// ensureClusterInfoMap creates cluster-info, or updates its kubeconfig
// when it names another server or CA. The other keys (the signatures) are
// left for the bootstrapsigner to replace.
func ensureClusterInfoMap(ctx context.Context, cs kubernetes.Interface, kc, server string, caPEM []byte) error {
	cms := cs.CoreV1().ConfigMaps(clusterInfoNamespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := cms.Get(ctx, clusterInfoName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = cms.Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: clusterInfoName, Namespace: clusterInfoNamespace, Labels: managed},
				Data:       map[string]string{kubeconfigKey: kc},
			}, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		if same(cm.Data[kubeconfigKey], server, caPEM) {
			return nil
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[kubeconfigKey] = kc
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("publishing %s/%s: %w", clusterInfoNamespace, clusterInfoName, err)
	}
	return nil
}

// same tells whether the kubeconfig kc names server and caPEM, however it
// is laid out (kubeadm's, or an older dk8s's): a rewrite would make the
// bootstrapsigner re-sign for nothing.
func same(kc, server string, caPEM []byte) bool {
	cfg, err := clientcmd.Load([]byte(kc))
	if err != nil || len(cfg.Clusters) != 1 {
		return false
	}
	for _, c := range cfg.Clusters {
		return c.Server == server && bytes.Equal(c.CertificateAuthorityData, caPEM)
	}
	return false
}

// ensureJoinRBAC makes the roles and bindings of a join, as kubeadm
// does, for dk8s's Group. Every step is tried, as ensureAddons does: by
// now cluster-info was written, so the apiserver answers.
func ensureJoinRBAC(ctx context.Context, cs kubernetes.Interface) error {
	rbac := cs.RbacV1()
	group := rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: Group}
	bind := func(name, role string, subject rbacv1.Subject) error {
		return create(ctx, "the "+name+" cluster role binding", rbac.ClusterRoleBindings().Create, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: managed},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{subject},
		})
	}
	steps := []error{
		create(ctx, "cluster-info's role", rbac.Roles(clusterInfoNamespace).Create, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: clusterInfoRole, Namespace: clusterInfoNamespace, Labels: managed},
			Rules: []rbacv1.PolicyRule{{
				APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{clusterInfoName}, Verbs: []string{"get"},
			}},
		}),
		create(ctx, "cluster-info's role binding", rbac.RoleBindings(clusterInfoNamespace).Create, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: clusterInfoRole, Namespace: clusterInfoNamespace, Labels: managed},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: clusterInfoRole},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "system:anonymous"}},
		}),
		// A joining kubelet posts a certificate request with the token...
		bind("dk8s:kubelet-bootstrap", "system:node-bootstrapper", group),
		// ...which the csrapprover approves...
		bind("dk8s:node-autoapprove-bootstrap", "system:certificates.k8s.io:certificatesigningrequests:nodeclient", group),
		// ...as it approves a node's renewal of its own certificate.
		bind("dk8s:node-autoapprove-certificate-rotation", "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
			rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "system:nodes"}),
		create(ctx, "the dk8s:get-nodes cluster role", rbac.ClusterRoles().Create, &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "dk8s:get-nodes", Labels: managed},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get"}}},
		}),
		bind("dk8s:get-nodes", "dk8s:get-nodes", group),
	}
	return errors.Join(steps...)
}

// create makes obj unless it exists.
func create[T any](ctx context.Context, what string, fn func(context.Context, T, metav1.CreateOptions) (T, error), obj T) error {
	if _, err := fn(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating %s: %w", what, err)
	}
	return nil
}

// parseCertsPEM reads every certificate of a PEM bundle, and needs one.
func parseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("a certificate of the PEM bundle does not parse: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate in it")
	}
	return certs, nil
}
