package bootstrap

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"strings"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func servingCSR(t *testing.T, name, user string, ips []string, dns []string, usages ...certificatesv1.KeyUsage) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: user, Organization: []string{"system:nodes"}}, DNSNames: dns}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	if usages == nil {
		usages = []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}
	}
	return &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), SignerName: certificatesv1.KubeletServingSignerName,
			Username: user, Groups: []string{"system:nodes", "system:authenticated"}, Usages: usages,
		},
	}
}

// The approver approves a kubelet's request for its own addresses, and
// leaves pending one that names an address its node does not report or
// comes from another identity, so a node cannot get a certificate for
// another's address (or the apiserver's).
func TestApproverApprovesOnlyANodesOwnAddresses(t *testing.T) {
	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker-1"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "172.29.0.3"}, {Type: corev1.NodeHostName, Address: "worker-1"}}}}
	good := servingCSR(t, "csr-good", "system:node:worker-1", []string{"172.29.0.3"}, []string{"worker-1"})
	otherIP := servingCSR(t, "csr-other-ip", "system:node:worker-1", []string{"172.29.0.2"}, nil)
	otherUser := servingCSR(t, "csr-other-user", "system:node:worker-2", []string{"172.29.0.3"}, nil)
	clientUsage := servingCSR(t, "csr-client", "system:node:worker-1", []string{"172.29.0.3"}, nil, certificatesv1.UsageClientAuth)
	cs := fake.NewSimpleClientset(node, good, otherIP, otherUser, clientUsage)
	var logs []string
	approvePending(ctx, cs, func(s string) { logs = append(logs, s) })
	for name, want := range map[string]bool{"csr-good": true, "csr-other-ip": false, "csr-other-user": false, "csr-client": false} {
		got, _ := cs.CertificatesV1().CertificateSigningRequests().Get(ctx, name, metav1.GetOptions{})
		if decided(got) != want {
			t.Errorf("%s: approved=%v, want %v (log: %s)", name, decided(got), want, strings.Join(logs, "; "))
		}
	}
	if !strings.Contains(strings.Join(logs, "\n"), "172.29.0.2 is not one node worker-1 reports") {
		t.Errorf("a refusal should say why: %v", logs)
	}
}
