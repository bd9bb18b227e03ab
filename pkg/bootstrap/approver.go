package bootstrap

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/pki"
)

// approverIdentity is the user the approver's certificate names.
const approverIdentity = "system:dk8s:csr-approver"

// approverHealth is where the approver answers for its health: loopback.
const approverHealth = "127.0.0.1:10270"

// csrApprover approves kubelets' serving-certificate requests, which the
// controller-manager never approves by itself: a kubelet asks for a
// certificate naming its node's addresses, and the approver checks the
// request against the node object before approving it, so the apiserver
// (--kubelet-certificate-authority) verifies every kubelet it talks to for
// 'kubectl logs' and 'exec'. It is dk8s itself, the static binary bound
// into the lock's pause image (which holds nothing else), with its own
// kubeconfig and nothing more.
func csrApprover() Component {
	return Component{
		Name:   "csr-approver",
		Ports:  []int{10270},
		Health: Endpoint{URL: "http://" + approverHealth + "/healthz"},
		Hint:   "'dk8s logs csr-approver'; it reaches the apiserver with csr-approver.conf",
		Certs: func(PKIConfig) []pki.CertSpec {
			return []pki.CertSpec{{Name: "csr-approver", CA: "ca", CommonName: approverIdentity, Usages: clientAuth}}
		},
		Kubeconfigs: []pki.Kubeconfig{{File: "csr-approver.conf", Cert: "csr-approver", CA: "ca"}},
		ImageOf:     "pause",
		Entrypoint:  []string{shimTarget, "csr-approver"},
		Flags: func(Config) map[string]string {
			return map[string]string{"kubeconfig": kubeconfigPath("csr-approver"), "health-address": approverHealth}
		},
		Mounts: func(cfg Config) []containers.Mount {
			return []containers.Mount{{Source: shimPath(cfg.Dir), Target: shimTarget, ReadOnly: true}}
		},
		Ready: ensureApproverRBAC,
		User:  "0:0",
	}
}

// shimPath is where dk8s installs its own static binary on a host.
func shimPath(dir string) string { return filepath.Join(dir, "bin", "dk8s") }

// shimTarget is where the containers that run dk8s's own code (the node's
// agents' supervisors, the helpers) have the shim bound.
const shimTarget = "/usr/local/bin/dk8s"

// ensureApproverRBAC lets the approver read requests and nodes and approve
// kubelet-serving requests, and nothing else.
func ensureApproverRBAC(ctx context.Context, cfg Config, opts StartOptions) error {
	cs, err := opts.client(filepath.Join(cfg.Dir, "super-admin.conf"))
	if err != nil {
		return err
	}
	name := "dk8s:csr-approver"
	for _, err := range []error{
		create(ctx, "the approver's role", cs.RbacV1().ClusterRoles().Create, &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: managed},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"certificatesigningrequests"}, Verbs: []string{"get", "list", "watch"}},
				{APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"certificatesigningrequests/approval"}, Verbs: []string{"update"}},
				{APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"signers"}, ResourceNames: []string{certificatesv1.KubeletServingSignerName}, Verbs: []string{"approve"}},
				{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get"}},
			},
		}),
		create(ctx, "the approver's role binding", cs.RbacV1().ClusterRoleBindings().Create, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: managed},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: approverIdentity}},
		}),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// RunApprover approves kubelet-serving requests that pass checkServingCSR
// until ctx ends, answering for its health at healthAddr; log hears of
// each decision.
func RunApprover(ctx context.Context, cs kubernetes.Interface, healthAddr string, log func(string)) error {
	ln, err := net.Listen("tcp", healthAddr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	for {
		approvePending(ctx, cs, log)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
}

// approvePending looks at every pending kubelet-serving request once.
func approvePending(ctx context.Context, cs kubernetes.Interface, log func(string)) {
	list, err := cs.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if err != nil {
		log("listing certificate requests: " + err.Error())
		return
	}
	for _, csr := range list.Items {
		if csr.Spec.SignerName != certificatesv1.KubeletServingSignerName || decided(&csr) {
			continue
		}
		node, err := cs.CoreV1().Nodes().Get(ctx, strings.TrimPrefix(csr.Spec.Username, "system:node:"), metav1.GetOptions{})
		if err != nil {
			continue // not registered yet, or not a node: asked again later
		}
		if err := checkServingCSR(&csr, node); err != nil {
			log(fmt.Sprintf("%s: left pending: %v", csr.Name, err))
			continue
		}
		csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue,
			Reason: "DK8SApproved", Message: "the serving certificate names only its node's own addresses",
		})
		if _, err := cs.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, &csr, metav1.UpdateOptions{}); err != nil {
			log(fmt.Sprintf("%s: approving: %v", csr.Name, err))
			continue
		}
		log(fmt.Sprintf("%s: approved the serving certificate of node %s", csr.Name, node.Name))
	}
}

func decided(csr *certificatesv1.CertificateSigningRequest) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == certificatesv1.CertificateApproved || c.Type == certificatesv1.CertificateDenied || c.Type == certificatesv1.CertificateFailed {
			return true
		}
	}
	return false
}

// checkServingCSR checks that a kubelet-serving request comes from node's
// own identity and asks for a serving certificate of that identity naming
// only addresses the node reports.
func checkServingCSR(csr *certificatesv1.CertificateSigningRequest, node *corev1.Node) error {
	user := "system:node:" + node.Name
	if csr.Spec.Username != user || !slices.Contains(csr.Spec.Groups, "system:nodes") {
		return fmt.Errorf("asked by %s, not by node %s", csr.Spec.Username, node.Name)
	}
	block, _ := pem.Decode(csr.Spec.Request)
	if block == nil {
		return fmt.Errorf("no PEM request")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return err
	}
	if err := req.CheckSignature(); err != nil {
		return err
	}
	if req.Subject.CommonName != user || !slices.Equal(req.Subject.Organization, []string{"system:nodes"}) {
		return fmt.Errorf("subject %s is not %s in system:nodes", req.Subject, user)
	}
	for _, u := range csr.Spec.Usages {
		if u != certificatesv1.UsageDigitalSignature && u != certificatesv1.UsageKeyEncipherment && u != certificatesv1.UsageServerAuth {
			return fmt.Errorf("usage %q is not a serving certificate's", u)
		}
	}
	if !slices.Contains(csr.Spec.Usages, certificatesv1.UsageServerAuth) {
		return fmt.Errorf("no server auth usage")
	}
	if len(req.EmailAddresses) > 0 || len(req.URIs) > 0 {
		return fmt.Errorf("e-mail or URI names are not a node's")
	}
	if len(req.IPAddresses)+len(req.DNSNames) == 0 {
		return fmt.Errorf("names no address")
	}
	var ips, names []string
	for _, a := range node.Status.Addresses {
		switch a.Type {
		case corev1.NodeInternalIP, corev1.NodeExternalIP:
			ips = append(ips, net.ParseIP(a.Address).String())
		case corev1.NodeHostName, corev1.NodeInternalDNS, corev1.NodeExternalDNS:
			names = append(names, a.Address)
		}
	}
	for _, ip := range req.IPAddresses {
		if !slices.Contains(ips, ip.String()) {
			return fmt.Errorf("address %s is not one node %s reports", ip, node.Name)
		}
	}
	for _, n := range req.DNSNames {
		if !slices.Contains(names, n) {
			return fmt.Errorf("name %s is not one node %s reports", n, node.Name)
		}
	}
	return nil
}
