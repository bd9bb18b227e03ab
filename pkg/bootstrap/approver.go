package bootstrap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/dk8s/dk8s/internal/kubeobj"
	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/pki"
)

// approverIdentity is the user the approver's certificate names.
const approverIdentity = "system:dk8s:csr-approver"

// approverHealth is where the approver answers for its health: loopback.
const approverHealth = "127.0.0.1:10270"

// approverAudit is where the approver hears, from the apiserver's audit
// webhook, which address each certificate request was sent from: TLS, and
// the apiserver's own client certificate, on loopback.
const approverAudit = "127.0.0.1:10272"

// auditClientName is the apiserver's identity towards the approver's audit
// receiver; it belongs to no group, and RBAC grants it nothing.
const auditClientName = "dk8s:kube-apiserver-audit"

// csrApprover approves kubelets' serving-certificate requests, which the
// controller-manager never approves by itself, so the apiserver
// (--kubelet-certificate-authority) verifies every kubelet it talks to for
// 'kubectl logs' and 'exec'. A node writes its own status, addresses
// included, so the approver trusts none of it: a request may name the
// node's own name and the address it was sent from, as the apiserver saw
// the connection (its audit webhook tells the approver), and nothing that
// is a control plane's, another node's, the Service range's or loopback.
// It is dk8s itself, the static binary bound into the lock's pause image
// (which holds nothing else), with its own kubeconfig and nothing more.
func csrApprover() Component {
	return Component{
		Name:   "csr-approver",
		Ports:  []int{10270, 10272},
		Health: Endpoint{URL: "http://" + approverHealth + "/healthz"},
		Hint:   "'dk8s logs csr-approver'; it reaches the apiserver with csr-approver.conf",
		Certs: func(PKIConfig) []pki.CertSpec {
			return []pki.CertSpec{
				{Name: "csr-approver", CA: "ca", CommonName: approverIdentity, Usages: clientAuth},
				{Name: "csr-approver-audit", CA: "ca", CommonName: "dk8s-csr-approver-audit", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Usages: serverAuth},
			}
		},
		Kubeconfigs: []pki.Kubeconfig{{File: "csr-approver.conf", Cert: "csr-approver", CA: "ca"}},
		ImageOf:     "pause",
		Entrypoint:  []string{shimTarget, "csr-approver"},
		Flags: func(cfg Config) map[string]string {
			f := map[string]string{
				"kubeconfig":     kubeconfigPath("csr-approver"),
				"health-address": approverHealth,
				"audit-address":  approverAudit,
				"tls-cert-file":  pkiPath("csr-approver-audit.crt"),
				"tls-key-file":   pkiPath("csr-approver-audit.key"),
				"client-ca-file": pkiPath("ca.crt"),
				"service-cidr":   cfg.ServiceCIDR,
			}
			if ip := net.ParseIP(cfg.endpointHost()); ip != nil {
				f["forbid-address"] = ip.String()
			}
			return f
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
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: kubeobj.Managed(nil)},
		Rules: []rbacv1.PolicyRule{
			// delete: a request whose source it cannot know (see approvePending).
			{APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"certificatesigningrequests"}, Verbs: []string{"get", "list", "watch", "delete"}},
			{APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"certificatesigningrequests/approval"}, Verbs: []string{"update"}},
			{APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"signers"}, ResourceNames: []string{certificatesv1.KubeletServingSignerName}, Verbs: []string{"approve"}},
			{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list"}},
		},
	}
	subject := []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: approverIdentity}}
	for _, err := range []error{
		kubeobj.Create(ctx, "the approver's role", cs.RbacV1().ClusterRoles().Create, role),
		kubeobj.Create(ctx, "the approver's role binding", cs.RbacV1().ClusterRoleBindings().Create, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: kubeobj.Managed(nil)},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects:   subject,
		}),
		// The addresses it approved, by node: written by it alone (nodes
		// write no ConfigMap in kube-system), made here since a create
		// cannot be limited to one name.
		kubeobj.Create(ctx, "the approver's record of addresses", cs.CoreV1().ConfigMaps(addonNS).Create, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: nodeAddressesRecord, Namespace: addonNS, Labels: kubeobj.Managed(nil)},
		}),
		kubeobj.Create(ctx, "the approver's record role", cs.RbacV1().Roles(addonNS).Create, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: addonNS, Labels: kubeobj.Managed(nil)},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{nodeAddressesRecord}, Verbs: []string{"get", "update"}}},
		}),
		kubeobj.Create(ctx, "the approver's record role binding", cs.RbacV1().RoleBindings(addonNS).Create, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: addonNS, Labels: kubeobj.Managed(nil)},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
			Subjects:   subject,
		}),
	} {
		if err != nil {
			return err
		}
	}
	// A cluster made by an earlier dk8s has the role without 'list nodes'
	// or 'delete' of requests.
	if _, err := cs.RbacV1().ClusterRoles().Update(ctx, role, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating the approver's role: %w", err)
	}
	return nil
}

// nodeAddressesRecord is the approver's record, in kube-system, of the
// addresses it approved for each node (address: node): the addresses the
// node's requests came from, which no other node may then have.
const nodeAddressesRecord = "dk8s-node-addresses"

// unsourcedGrace is how long a request may wait for the apiserver's audit
// event of it, which the apiserver sends within a second (its batch's
// longest wait, --audit-webhook-batch-max-wait): a request older with none
// was sent while the approver was not listening.
const unsourcedGrace = time.Minute

// ApproverConfig is what the approver is told.
type ApproverConfig struct {
	// HealthAddr is where it answers for its health (plain HTTP, loopback).
	HealthAddr string
	// AuditAddr is where it receives the apiserver's audit events, with
	// AuditTLS: its serving certificate, and the apiserver's client
	// certificate required.
	AuditAddr string
	AuditTLS  *tls.Config
	// ServiceNet is the Service range; Forbidden are more addresses no
	// node may have (the control-plane endpoint).
	ServiceNet *net.IPNet
	Forbidden  []net.IP
	// Log hears of each decision.
	Log func(string)
}

// RunApprover approves kubelet-serving requests that pass checkServingCSR
// until ctx ends.
func RunApprover(ctx context.Context, cs kubernetes.Interface, ac ApproverConfig) error {
	ln, err := net.Listen("tcp", ac.HealthAddr)
	if err != nil {
		return err
	}
	health := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }), ReadHeaderTimeout: 5 * time.Second}
	go health.Serve(ln)
	defer health.Close()
	a := newApprover(cs, ac)
	aln, err := tls.Listen("tcp", ac.AuditAddr, ac.AuditTLS)
	if err != nil {
		return err
	}
	audit := &http.Server{Handler: a.sources, ReadHeaderTimeout: 5 * time.Second}
	go audit.Serve(aln)
	defer audit.Close()
	for {
		a.approvePending(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
}

// AuditClientTLS is the approver's audit receiver's TLS: cert and key
// serve it, and a client must present a certificate of ca for the
// apiserver's audit identity.
func AuditClientTLS(cert tls.Certificate, ca *x509.CertPool) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca,
		MinVersion:   tls.VersionTLS12,
		VerifyPeerCertificate: func(_ [][]byte, chains [][]*x509.Certificate) error {
			if len(chains) == 0 || chains[0][0].Subject.CommonName != auditClientName {
				return fmt.Errorf("only the apiserver (%s) sends audit events", auditClientName)
			}
			return nil
		},
	}
}

// requestSources are the addresses certificate requests were sent from,
// by request name, as the apiserver's audit webhook reports them: the one
// fact of a request the node that sent it cannot make up.
type requestSources struct {
	mu     sync.Mutex
	byName map[string]requestSource
}

type requestSource struct {
	user string
	ip   net.IP
	seen time.Time
}

func newRequestSources() *requestSources {
	return &requestSources{byName: map[string]requestSource{}}
}

// auditEvents is the part of audit.k8s.io/v1's EventList the approver reads.
type auditEvents struct {
	Items []struct {
		Stage     string   `json:"stage"`
		Verb      string   `json:"verb"`
		SourceIPs []string `json:"sourceIPs"`
		User      struct {
			Username string `json:"username"`
		} `json:"user"`
		ObjectRef *struct {
			Resource string `json:"resource"`
			Name     string `json:"name"`
		} `json:"objectRef"`
		ResponseObject *struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		} `json:"responseObject"`
	} `json:"items"`
}

// ServeHTTP takes a batch of audit events from the apiserver.
func (s *requestSources) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST audit events", http.StatusMethodNotAllowed)
		return
	}
	var events auditEvents
	if err := json.NewDecoder(io.LimitReader(r.Body, 16<<20)).Decode(&events); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.record(events, time.Now())
	w.WriteHeader(http.StatusOK)
}

// record keeps the source of each request made, and forgets those older
// than an hour (a kubelet asks again when its request is not answered).
func (s *requestSources) record(events auditEvents, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, src := range s.byName {
		if now.Sub(src.seen) > time.Hour {
			delete(s.byName, name)
		}
	}
	for _, e := range events.Items {
		if e.Stage != "ResponseComplete" || e.Verb != "create" || e.ObjectRef == nil || e.ObjectRef.Resource != "certificatesigningrequests" || len(e.SourceIPs) == 0 {
			continue
		}
		name := e.ObjectRef.Name
		if name == "" && e.ResponseObject != nil {
			name = e.ResponseObject.Metadata.Name
		}
		// The last is the connection's own address; those before it come
		// from X-Forwarded-For and X-Real-Ip, which a client writes.
		ip := net.ParseIP(e.SourceIPs[len(e.SourceIPs)-1])
		if name == "" || ip == nil {
			continue
		}
		s.byName[name] = requestSource{user: e.User.Username, ip: ip, seen: now}
	}
}

// of is where request name was sent from, by whom.
func (s *requestSources) of(name string) (requestSource, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	src, ok := s.byName[name]
	return src, ok
}

// approver decides kubelets' serving-certificate requests.
type approver struct {
	cs      kubernetes.Interface
	ac      ApproverConfig
	sources *requestSources
	// logged are the requests whose refusal was logged: once each.
	logged map[string]bool
}

func newApprover(cs kubernetes.Interface, ac ApproverConfig) *approver {
	return &approver{cs: cs, ac: ac, sources: newRequestSources(), logged: map[string]bool{}}
}

// approvePending looks at every pending kubelet-serving request once.
func (a *approver) approvePending(ctx context.Context) {
	cs, ac, sources := a.cs, a.ac, a.sources
	list, err := cs.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if err != nil {
		ac.Log("listing certificate requests: " + err.Error())
		return
	}
	var nodes *corev1.NodeList
	var record *corev1.ConfigMap
	var owners map[string]string // the record's addresses of nodes that exist
	for _, csr := range list.Items {
		if csr.Spec.SignerName != certificatesv1.KubeletServingSignerName || decided(&csr) {
			continue
		}
		if nodes == nil {
			if nodes, err = cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
				ac.Log("listing nodes: " + err.Error())
				return
			}
			if record, err = cs.CoreV1().ConfigMaps(addonNS).Get(ctx, nodeAddressesRecord, metav1.GetOptions{}); err != nil {
				ac.Log("reading the record of nodes' addresses: " + err.Error())
				return
			}
			owners = liveOwners(record.Data, nodes.Items)
		}
		name := strings.TrimPrefix(csr.Spec.Username, "system:node:")
		i := slices.IndexFunc(nodes.Items, func(n corev1.Node) bool { return n.Name == name })
		if i < 0 {
			continue // not registered yet, or not a node: asked again later
		}
		src, ok := sources.of(csr.Name)
		if !ok && time.Since(csr.CreationTimestamp.Time) > unsourcedGrace {
			// Sent while this approver was not listening (the kubelet
			// asked before it started, or while it restarted): the
			// apiserver's event of it is gone, and nothing else says
			// where it came from. Deleted, the request is made again by
			// its kubelet (client-go's certificate manager gives up on a
			// deleted request and sends a new one), and the new one's
			// event comes.
			err := cs.CertificatesV1().CertificateSigningRequests().Delete(ctx, csr.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &csr.UID}})
			switch {
			case err == nil:
				ac.Log(fmt.Sprintf("%s: sent by %s before this approver was listening, so not known where from: deleted, for its kubelet to ask again", csr.Name, csr.Spec.Username))
			case !apierrors.IsNotFound(err) && !a.logged[csr.Name]:
				ac.Log(fmt.Sprintf("%s: not known where it was sent from, and deleting it failed: %v; delete it by hand (kubectl delete csr %s) for its kubelet to ask again", csr.Name, err, csr.Name))
				a.logged[csr.Name] = true
			}
			continue
		}
		if !ok || src.user != csr.Spec.Username {
			continue // the apiserver's audit event has not come yet
		}
		allowed := []net.IP{src.ip}
		if src.ip.IsLoopback() {
			// Sent on this control plane's own host: the request names this
			// host's addresses.
			allowed = HostAddresses()
		}
		ips, err := checkServingCSR(&csr, &nodes.Items[i], allowed, owners, ac)
		if err != nil {
			if !a.logged[csr.Name] {
				ac.Log(fmt.Sprintf("%s: left pending: %v; if you trust it, approve it by hand with 'kubectl certificate approve %s'", csr.Name, err, csr.Name))
				a.logged[csr.Name] = true
			}
			continue
		}
		// Recorded before it is approved: an address approved is one no
		// other node gets.
		if record, err = recordAddresses(ctx, cs, record, owners, ips, name); err != nil {
			ac.Log(fmt.Sprintf("%s: recording its addresses: %v", csr.Name, err))
			return
		}
		csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue,
			Reason: "DK8SApproved", Message: "the serving certificate names only its node's name and the address its request came from",
		})
		if _, err := cs.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, &csr, metav1.UpdateOptions{}); err != nil {
			ac.Log(fmt.Sprintf("%s: approving: %v", csr.Name, err))
			continue
		}
		ac.Log(fmt.Sprintf("%s: approved the serving certificate of node %s, sent from %s", csr.Name, name, src.ip))
	}
	for name := range a.logged {
		if !slices.ContainsFunc(list.Items, func(c certificatesv1.CertificateSigningRequest) bool { return c.Name == name && !decided(&c) }) {
			delete(a.logged, name)
		}
	}
}

// liveOwners are the record's addresses of nodes that still exist
// (address: node).
func liveOwners(record map[string]string, nodes []corev1.Node) map[string]string {
	out := map[string]string{}
	for ip, owner := range record {
		if slices.ContainsFunc(nodes, func(n corev1.Node) bool { return n.Name == owner }) {
			out[ip] = owner
		}
	}
	return out
}

// recordAddresses writes the record anew: owners (the addresses of nodes
// that exist) with ips added for node, which owners then holds too. It
// returns the record written.
func recordAddresses(ctx context.Context, cs kubernetes.Interface, record *corev1.ConfigMap, owners map[string]string, ips []net.IP, node string) (*corev1.ConfigMap, error) {
	for _, ip := range ips {
		owners[ip.String()] = node
	}
	r := record.DeepCopy()
	r.Data = maps.Clone(owners)
	return cs.CoreV1().ConfigMaps(addonNS).Update(ctx, r, metav1.UpdateOptions{})
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
// only node's name and addresses of allowed (where the request was sent
// from), none of them an address no node may have: loopback, unspecified,
// link-local or multicast, the Service range's, ac.Forbidden, or one
// approved for another node before (owners, address to node: a control
// plane's node's among them). It returns the request's addresses.
func checkServingCSR(csr *certificatesv1.CertificateSigningRequest, node *corev1.Node, allowed []net.IP, owners map[string]string, ac ApproverConfig) ([]net.IP, error) {
	user := "system:node:" + node.Name
	if csr.Spec.Username != user || !slices.Contains(csr.Spec.Groups, "system:nodes") {
		return nil, fmt.Errorf("asked by %s, not by node %s", csr.Spec.Username, node.Name)
	}
	block, _ := pem.Decode(csr.Spec.Request)
	if block == nil {
		return nil, fmt.Errorf("no PEM request")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, err
	}
	if err := req.CheckSignature(); err != nil {
		return nil, err
	}
	if req.Subject.CommonName != user || !slices.Equal(req.Subject.Organization, []string{"system:nodes"}) {
		return nil, fmt.Errorf("subject %s is not %s in system:nodes", req.Subject, user)
	}
	for _, u := range csr.Spec.Usages {
		if u != certificatesv1.UsageDigitalSignature && u != certificatesv1.UsageKeyEncipherment && u != certificatesv1.UsageServerAuth {
			return nil, fmt.Errorf("usage %q is not a serving certificate's", u)
		}
	}
	if !slices.Contains(csr.Spec.Usages, certificatesv1.UsageServerAuth) {
		return nil, fmt.Errorf("no server auth usage")
	}
	if len(req.EmailAddresses) > 0 || len(req.URIs) > 0 {
		return nil, fmt.Errorf("e-mail or URI names are not a node's")
	}
	if len(req.IPAddresses)+len(req.DNSNames) == 0 {
		return nil, fmt.Errorf("names no address")
	}
	for _, n := range req.DNSNames {
		if n != node.Name || n == "localhost" || n == "kubernetes" || strings.HasPrefix(n, "kubernetes.") {
			return nil, fmt.Errorf("name %s is not node %s's own name", n, node.Name)
		}
	}
	for _, ip := range req.IPAddresses {
		switch {
		case ip.IsLoopback() || ip.IsUnspecified() || ip.IsLinkLocalUnicast() || ip.IsMulticast():
			return nil, fmt.Errorf("address %s is no node's", ip)
		case ac.ServiceNet != nil && ac.ServiceNet.Contains(ip):
			return nil, fmt.Errorf("address %s is in the Service range %s", ip, ac.ServiceNet)
		case slices.ContainsFunc(ac.Forbidden, ip.Equal):
			return nil, fmt.Errorf("address %s is the control plane's endpoint", ip)
		case owners[ip.String()] != "" && owners[ip.String()] != node.Name:
			return nil, fmt.Errorf("address %s is node %s's", ip, owners[ip.String()])
		case !slices.ContainsFunc(allowed, ip.Equal):
			return nil, fmt.Errorf("address %s is not the one the request was sent from (%s)", ip, joinIPs(allowed))
		}
	}
	return req.IPAddresses, nil
}

func joinIPs(ips []net.IP) string {
	var s []string
	for _, ip := range ips {
		s = append(s, ip.String())
	}
	return strings.Join(s, ", ")
}
