package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"net"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// assertLyingNodeRefused is what a join token's holder can get once it is
// node w: with w's own credentials (as a token holder has them), it writes
// the control plane's address, another node's and the apiserver's Service
// address into its Node's status, and asks for serving certificates for
// those, for loopback, for the apiserver's names, and for its own address
// from a machine that is not it. None is approved; the kubelet's own
// request, sent from its machine for its name and address, was.
func assertLyingNodeRefused(t *testing.T, cp, w, other *machine) {
	t.Helper()
	cert := w.exec(t, "cat", "/var/lib/dk8s/kubelet/pki/kubelet-client-current.pem").stdout
	ca := cp.exec(t, "cat", "/var/lib/dk8s/pki/ca.crt").stdout
	if !strings.Contains(cert, "PRIVATE KEY") || !strings.Contains(ca, "CERTIFICATE") {
		t.Fatalf("the worker's client credentials or the cluster CA could not be read")
	}
	cs, err := kubernetes.NewForConfig(&rest.Config{
		Host:            "https://" + cp.addr + ":6443",
		TLSClientConfig: rest.TLSClientConfig{CertData: []byte(cert), KeyData: []byte(cert), CAData: []byte(ca)},
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	user := "system:node:" + w.name

	// The lie in the status, as the old approver believed it.
	addrs := []map[string]string{{"type": "InternalIP", "address": w.addr}, {"type": "InternalIP", "address": cp.addr},
		{"type": "InternalIP", "address": other.addr}, {"type": "InternalIP", "address": "10.96.0.1"}, {"type": "Hostname", "address": w.name}}
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"addresses": addrs}})
	if _, err := cs.CoreV1().Nodes().Patch(ctx, w.name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		t.Fatalf("node %s patching its own status: %v", w.name, err)
	}

	asks := map[string]struct {
		ips []string
		dns []string
	}{
		"the control plane's address": {ips: []string{cp.addr}},
		"another node's address":      {ips: []string{other.addr}},
		"the apiserver's Service IP":  {ips: []string{"10.96.0.1"}},
		"loopback":                    {ips: []string{"127.0.0.1"}},
		"the apiserver's names":       {ips: []string{w.addr}, dns: []string{"kubernetes.default.svc", "kubernetes"}},
		// Sent from this host (the machines' gateway), not from the node.
		"its own address, from elsewhere": {ips: []string{w.addr}, dns: []string{w.name}},
	}
	var names []string
	for what, a := range asks {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: user, Organization: []string{"system:nodes"}}, DNSNames: a.dns}
		for _, ip := range a.ips {
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
		if err != nil {
			t.Fatal(err)
		}
		csr, err := cs.CertificatesV1().CertificateSigningRequests().Create(ctx, &certificatesv1.CertificateSigningRequest{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "lying-"},
			Spec: certificatesv1.CertificateSigningRequestSpec{
				Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
				SignerName: certificatesv1.KubeletServingSignerName,
				Usages:     []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("node %s asking for %s: %v", w.name, what, err)
		}
		names = append(names, csr.Name+" ("+what+")")
	}
	kubectl := adminKubectl(t, cp)
	t.Cleanup(func() {
		for _, n := range names {
			kubectl("delete", "csr", strings.Fields(n)[0])
		}
	})
	// The approver looks every 2 s, once the apiserver's audit event came
	// (within 1 s): ten seconds is five looks.
	time.Sleep(10 * time.Second)
	for _, n := range names {
		out, _ := kubectl("get", "csr", strings.Fields(n)[0], "-o", "jsonpath={.status.conditions[*].type}")
		if strings.Contains(out, "Approved") {
			t.Errorf("the request %s was approved", n)
		}
	}
	// The kubelet's own, from its machine, was: the apiserver verifies its
	// certificate for logs and exec.
	out, _ := kubectl("get", "csr", "-o", `jsonpath={range .items[?(@.spec.signerName=="kubernetes.io/kubelet-serving")]}{.spec.username}{" "}{.status.conditions[*].type}{"\n"}{end}`)
	if !strings.Contains(out, user+" Approved") {
		t.Errorf("the kubelet of %s should have its own serving certificate approved:\n%s", w.name, out)
	}
	if logs := cp.exec(t, "docker", "logs", "dk8s-csr-approver").stderr; !strings.Contains(logs, "left pending") {
		t.Errorf("the approver should log why it left the requests pending:\n%s", logs)
	}
}
