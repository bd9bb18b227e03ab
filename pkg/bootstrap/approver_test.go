package bootstrap

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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

// auditEvent is the apiserver's audit event of the creation of CSR name by
// user, over a connection from sourceIPs' last.
func auditEvent(name, user string, sourceIPs ...string) string {
	ips, _ := json.Marshal(sourceIPs)
	return `{"kind":"Event","stage":"ResponseComplete","verb":"create","user":{"username":"` + user + `"},"sourceIPs":` + string(ips) +
		`,"objectRef":{"resource":"certificatesigningrequests","apiGroup":"certificates.k8s.io"},"responseObject":{"metadata":{"name":"` + name + `"}}}`
}

// A node writes its own status: the approver trusts none of it. It
// approves a kubelet's request for its own name and the address the
// request came from, and leaves pending one that names anything else: an
// address the node claims in its status, another node's (a control
// plane's), the Service range's, loopback, a name of the apiserver's.
func TestApproverApprovesOnlyANodesNameAndTheAddressItsRequestCameFrom(t *testing.T) {
	ctx := context.Background()
	// worker-1 lies in its status: it reports the control plane's address
	// and the apiserver's Service address as its own.
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker-1"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "172.29.0.3"}, {Type: corev1.NodeInternalIP, Address: "172.29.0.2"},
		{Type: corev1.NodeInternalIP, Address: "10.96.0.1"}, {Type: corev1.NodeHostName, Address: "worker-1"}}}}
	cp := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cp"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "172.29.0.2"}}}}
	w1 := "system:node:worker-1"
	csrs := map[string]struct {
		csr    *certificatesv1.CertificateSigningRequest
		from   []string
		want   bool
		saying string
	}{
		"csr-good":       {servingCSR(t, "csr-good", w1, []string{"172.29.0.3"}, []string{"worker-1"}), []string{"172.29.0.3"}, true, ""},
		"csr-forwarded":  {servingCSR(t, "csr-forwarded", w1, []string{"172.29.0.3"}, nil), []string{"172.29.0.3", "172.29.0.9"}, false, "not the one the request was sent from (172.29.0.9)"},
		"csr-cp":         {servingCSR(t, "csr-cp", w1, []string{"172.29.0.2"}, nil), []string{"172.29.0.3"}, false, "172.29.0.2 is node cp's"},
		"csr-from-cp":    {servingCSR(t, "csr-from-cp", w1, []string{"172.29.0.2"}, nil), []string{"172.29.0.2"}, false, "172.29.0.2 is node cp's"},
		"csr-service":    {servingCSR(t, "csr-service", w1, []string{"10.96.0.1"}, nil), []string{"172.29.0.3"}, false, "in the Service range"},
		"csr-loopback":   {servingCSR(t, "csr-loopback", w1, []string{"127.0.0.1"}, nil), []string{"172.29.0.3"}, false, "127.0.0.1 is no node's"},
		"csr-endpoint":   {servingCSR(t, "csr-endpoint", w1, []string{"172.29.0.100"}, nil), []string{"172.29.0.100"}, false, "control plane's endpoint"},
		"csr-apiserver":  {servingCSR(t, "csr-apiserver", w1, []string{"172.29.0.3"}, []string{"kubernetes.default.svc"}), []string{"172.29.0.3"}, false, "not node worker-1's own name"},
		"csr-wildcard":   {servingCSR(t, "csr-wildcard", w1, []string{"172.29.0.3"}, []string{"*.worker-1"}), []string{"172.29.0.3"}, false, "not node worker-1's own name"},
		"csr-other-user": {servingCSR(t, "csr-other-user", "system:node:worker-2", []string{"172.29.0.3"}, nil), []string{"172.29.0.3"}, false, ""},
		"csr-client":     {servingCSR(t, "csr-client", w1, []string{"172.29.0.3"}, nil, certificatesv1.UsageClientAuth), []string{"172.29.0.3"}, false, "usage"},
		"csr-no-audit":   {servingCSR(t, "csr-no-audit", w1, []string{"172.29.0.3"}, nil), nil, false, ""},
		"csr-unsourced":  {servingCSR(t, "csr-unsourced", w1, []string{"172.29.0.3"}, nil), nil, false, "deleted, for its kubelet to ask again"},
	}
	// csr-unsourced was sent before the approver listened: no event of it
	// will come.
	csrs["csr-unsourced"].csr.CreationTimestamp = metav1.NewTime(time.Now().Add(-2 * unsourcedGrace))
	// The control plane's node had its own request approved before.
	record := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: nodeAddressesRecord, Namespace: "kube-system"},
		Data: map[string]string{"172.29.0.2": "cp", "172.29.0.7": "a-node-since-deleted"}}
	cs := fake.NewSimpleClientset(node, cp, record)
	var events []string
	for name, c := range csrs {
		cs.CertificatesV1().CertificateSigningRequests().Create(ctx, c.csr, metav1.CreateOptions{})
		if c.from != nil {
			events = append(events, auditEvent(name, c.csr.Spec.Username, c.from...))
		}
	}
	_, svc, _ := net.ParseCIDR("10.96.0.0/12")
	var logs []string
	a := newApprover(cs, ApproverConfig{ServiceNet: svc, Forbidden: []net.IP{net.ParseIP("172.29.0.100")}, Log: func(s string) { logs = append(logs, s) }})
	// The apiserver posts its events to the approver's receiver.
	rec := httptest.NewRecorder()
	a.sources.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"kind":"EventList","items":[`+strings.Join(events, ",")+`]}`)))
	if rec.Code != http.StatusOK {
		t.Fatalf("the receiver answered %d: %s", rec.Code, rec.Body)
	}
	a.approvePending(ctx)
	log := strings.Join(logs, "\n")
	if _, err := cs.CertificatesV1().CertificateSigningRequests().Get(ctx, "csr-unsourced", metav1.GetOptions{}); err == nil {
		t.Errorf("a request older than %s with no audit event should be deleted, for its kubelet to ask again", unsourcedGrace)
	}
	if want := csrs["csr-unsourced"].saying; !strings.Contains(lineWith(log, "csr-unsourced:"), want) {
		t.Errorf("the deletion should say %q:\n%s", want, log)
	}
	delete(csrs, "csr-unsourced")
	for name, c := range csrs {
		got, _ := cs.CertificatesV1().CertificateSigningRequests().Get(ctx, name, metav1.GetOptions{})
		if decided(got) != c.want {
			t.Errorf("%s: approved=%v, want %v (log:\n%s)", name, decided(got), c.want, log)
		}
		if c.saying != "" && !strings.Contains(lineWith(log, name+":"), c.saying) {
			t.Errorf("%s: the refusal should say %q:\n%s", name, c.saying, log)
		}
	}
	got, _ := cs.CoreV1().ConfigMaps("kube-system").Get(ctx, nodeAddressesRecord, metav1.GetOptions{})
	if want := map[string]string{"172.29.0.2": "cp", "172.29.0.3": "worker-1"}; !maps.Equal(got.Data, want) {
		t.Errorf("the record of approved addresses is %v, want %v (a deleted node's forgotten)", got.Data, want)
	}
	// A refusal is logged once, not at every look.
	a.approvePending(ctx)
	if n := strings.Count(strings.Join(logs, "\n"), "csr-cp: left pending"); n != 1 {
		t.Errorf("the refusal of csr-cp was logged %d times, want once", n)
	}
}

// lineWith is the first line of s that holds sub.
func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// Only the apiserver's audit identity may post events: another client
// certificate of the cluster CA (a node's) is refused.
func TestAuditReceiverTakesOnlyTheAPIServer(t *testing.T) {
	cfg := AuditClientTLS(tls.Certificate{}, x509.NewCertPool())
	if cfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("the receiver must require a client certificate: %v", cfg.ClientAuth)
	}
	for cn, ok := range map[string]bool{auditClientName: true, "system:node:worker-1": false} {
		chain := [][]*x509.Certificate{{{Subject: pkix.Name{CommonName: cn}}}}
		if err := cfg.VerifyPeerCertificate(nil, chain); (err == nil) != ok {
			t.Errorf("a client certificate for %s: %v", cn, err)
		}
	}
}
