package token

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var testToken = Token{ID: "abcdef", Secret: "0123456789abcdef"}

// sign is the bootstrapsigner's detached JWS of content for tok, with
// header as the protected header's JSON: HS256 keyed with the secret over
// BASE64URL(header) "." BASE64URL(content), the payload then left out.
func sign(content string, tok Token, header string) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(header))
	mac := hmac.New(sha256.New, []byte(tok.Secret))
	mac.Write([]byte(h + "." + base64.RawURLEncoding.EncodeToString([]byte(content))))
	return h + ".." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// goJoseHeader is the header go-jose writes for the bootstrapsigner.
func goJoseHeader(id string) string { return `{"alg":"HS256","kid":"` + id + `"}` }

// The controller-manager's own signature (k8s.io/cluster-bootstrap's
// jws.ComputeDetachedSignature, go-jose v2.6.3) of a kubeconfig for the
// token abcdef.0123456789abcdef.
func TestVerifyDetachedJWSTakesTheControllerManagersSignature(t *testing.T) {
	const (
		content = "apiVersion: v1\nclusters:\n- cluster:\n    server: https://192.0.2.10:6443\n  name: \"\"\n"
		sig     = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9..uj1kWWegV9LxC7mTpwA4VXU8elm2ErZYHzoO7pAzriA"
	)
	if err := verifyDetachedJWS(sig, content, testToken); err != nil {
		t.Errorf("the controller-manager's signature was refused: %v", err)
	}
	if got := sign(content, testToken, goJoseHeader("abcdef")); got != sig {
		t.Errorf("the test's signer makes %s, the controller-manager %s", got, sig)
	}
	if err := verifyDetachedJWS(sig, content+" ", testToken); err == nil {
		t.Error("a signature of other content was accepted")
	}
	if err := verifyDetachedJWS(sig, content, Token{ID: "abcdef", Secret: "0123456789abcdeg"}); err == nil || !strings.Contains(err.Error(), "does not match the token's secret") {
		t.Errorf("a wrong secret: %v", err)
	}
}

func TestVerifyDetachedJWSChecksTheHeaderItGot(t *testing.T) {
	const content = "kubeconfig"
	// Another JOSE library's layout of the same header: the MAC is over
	// the bytes received.
	if err := verifyDetachedJWS(sign(content, testToken, `{ "kid": "abcdef", "alg": "HS256" }`), content, testToken); err != nil {
		t.Errorf("a header laid out otherwise was refused: %v", err)
	}
	full := sign(content, testToken, goJoseHeader("abcdef"))
	h, _, _ := strings.Cut(full, "..")
	for name, c := range map[string]struct{ sig, want string }{
		"alg none":         {sign(content, testToken, `{"alg":"none","kid":"abcdef"}`), `made with "none", not HS256`},
		"another alg":      {sign(content, testToken, `{"alg":"HS512","kid":"abcdef"}`), `made with "HS512", not HS256`},
		"another key":      {sign(content, testToken, goJoseHeader("ghijkl")), `names the key "ghijkl"`},
		"no key":           {sign(content, testToken, `{"alg":"HS256"}`), `names the key ""`},
		"an extension":     {sign(content, testToken, `{"alg":"HS256","kid":"abcdef","b64":false,"crit":["b64"]}`), "JWS extensions [b64]"},
		"payload attached": {strings.Replace(full, "..", "."+base64.RawURLEncoding.EncodeToString([]byte(content))+".", 1), "not a detached JWS"},
		"two parts":        {h + ".", "not a detached JWS"},
		"header not JSON":  {base64.RawURLEncoding.EncodeToString([]byte("alg=HS256")) + "..AAAA", "header that is not JSON"},
		"header not b64":   {"!!!..AAAA", "header that is not base64url"},
	} {
		if err := verifyDetachedJWS(c.sig, content, testToken); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", name, err, c.want)
		}
	}
}

// signedClusterInfo is cluster-info as a control plane serves it once the
// bootstrapsigner signed it for tok: naming server and caPEM.
func signedClusterInfo(t *testing.T, server string, caPEM []byte, tok Token) map[string]string {
	t.Helper()
	kc, err := clusterInfoKubeconfig(server, caPEM)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{kubeconfigKey: kc, signaturePrefix + tok.ID: sign(kc, tok, goJoseHeader(tok.ID))}
}

// fakeAPIServer serves cluster-info on 127.0.0.1 with cert: data(n) is
// the ConfigMap's data at the n-th request (from 1).
func fakeAPIServer(t *testing.T, cert tls.Certificate, data func(n int64) map[string]string) *httptest.Server {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/namespaces/kube-public/configmaps/cluster-info" || r.Header.Get("Authorization") != "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		cm := corev1.ConfigMap{TypeMeta: metav1.TypeMeta{Kind: "ConfigMap", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{Name: "cluster-info", Namespace: "kube-public"}, Data: data(n.Add(1))}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(cm)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	// The refused handshakes are the tests' point, not news.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestDiscoverTrustsTheSignedPinnedCA(t *testing.T) {
	ca := newCA(t)
	var requests atomic.Int64
	// cluster-info names the advertised address, not the one the host
	// reached: the host learns it.
	data := signedClusterInfo(t, "https://192.0.2.10:6443", ca.pem, testToken)
	srv := fakeAPIServer(t, ca.serving(t, net.IPv4(127, 0, 0, 1)), func(n int64) map[string]string { requests.Store(n); return data })

	info, err := DiscoverClusterInfo(context.Background(), srv.URL, testToken, []string{zeroHash, strings.ToUpper(CAHash(ca.cert))})
	if err != nil {
		t.Fatal(err)
	}
	if string(info.CAPEM) != string(ca.pem) || info.Server != "https://192.0.2.10:6443" {
		t.Errorf("DiscoverClusterInfo = %+v, want the CA and cluster-info's server", info)
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("cluster-info was fetched %d times, want twice: unverified, then over TLS verified by the CA", n)
	}
	caPEM, err := Discover(context.Background(), strings.TrimPrefix(srv.URL, "https://"), testToken, []string{CAHash(ca.cert)})
	if err != nil || string(caPEM) != string(ca.pem) {
		t.Errorf("Discover at HOST:PORT = %v, want the CA", err)
	}
}

func TestDiscoverRefuses(t *testing.T) {
	ca := newCA(t)
	localhost := ca.serving(t, net.IPv4(127, 0, 0, 1))
	pin := []string{CAHash(ca.cert)}
	genuine := func(t *testing.T) map[string]string {
		return signedClusterInfo(t, "https://192.0.2.10:6443", ca.pem, testToken)
	}
	for _, c := range []struct {
		name string
		cert tls.Certificate
		data func(t *testing.T) func(n int64) map[string]string
		tok  Token
		pins []string
		is   error
		want []string
	}{
		{name: "a token the cluster does not know", tok: Token{ID: "ghijkl", Secret: testToken.Secret}, is: ErrNoSignature,
			want: []string{"no signature for the token ghijkl at 127.0.0.1:", "unknown to this cluster or has expired", "'dk8s token create' on the control plane"}},
		{name: "a wrong secret", tok: Token{ID: "abcdef", Secret: "fedcba9876543210"},
			want: []string{"does not match the token's secret: check the token's part after the dot"}},
		{name: "another CA's hash", pins: []string{"sha256:" + strings.Repeat("ab", 32)},
			want: []string{"has the hash " + CAHash(ca.cert) + ", not the one given", "'dk8s token create --print-join-command' on the control plane"}},
		{name: "no hash", pins: []string{}, want: []string{"no CA hash given", "'dk8s token create --print-join-command'"}},
		{name: "a man in the middle relaying cluster-info", cert: newCA(t).serving(t, net.IPv4(127, 0, 0, 1)),
			want: []string{"presents a certificate the cluster CA did not sign, though cluster-info is genuine", "do not join through it"}},
		{name: "an address the certificate does not name", cert: ca.serving(t, net.IPv4(192, 0, 2, 10)),
			want: []string{"the apiserver's certificate names 192.0.2.10, not 127.0.0.1", "'dk8s token create --print-join-command'"}},
		{name: "cluster-info that changes between the fetches", data: func(t *testing.T) func(int64) map[string]string {
			first, second := genuine(t), signedClusterInfo(t, "https://192.0.2.66:6443", ca.pem, testToken)
			return func(n int64) map[string]string {
				if n == 1 {
					return first
				}
				return second
			}
		}, want: []string{"changed between its unverified and its verified fetch"}},
		{name: "cluster-info without a kubeconfig", data: func(*testing.T) func(int64) map[string]string {
			return func(int64) map[string]string { return map[string]string{"jws-kubeconfig-abcdef": "x"} }
		}, want: []string{"holds no kubeconfig", "run 'dk8s token create' on it"}},
		{name: "a signed kubeconfig without a CA", data: func(t *testing.T) func(int64) map[string]string {
			kc := "apiVersion: v1\nkind: Config\nclusters:\n- name: \"\"\n  cluster:\n    server: https://192.0.2.10:6443\n"
			d := map[string]string{kubeconfigKey: kc, "jws-kubeconfig-abcdef": sign(kc, testToken, goJoseHeader("abcdef"))}
			return func(int64) map[string]string { return d }
		}, want: []string{"is unusable: it names no single cluster with a server and a CA"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.cert.Certificate == nil {
				c.cert = localhost
			}
			if c.data == nil {
				c.data = func(t *testing.T) func(int64) map[string]string {
					d := genuine(t)
					return func(int64) map[string]string { return d }
				}
			}
			if c.tok.ID == "" {
				c.tok = testToken
			}
			if c.pins == nil {
				c.pins = pin
			}
			srv := fakeAPIServer(t, c.cert, c.data(t))
			caPEM, err := Discover(context.Background(), srv.URL, c.tok, c.pins)
			checkErr(t, err, c.is, c.want...)
			if caPEM != nil {
				t.Errorf("Discover returned a CA along with its error")
			}
		})
	}
}

// checkErr fails unless err is is (when not nil) and says each of want.
func checkErr(t *testing.T, err, is error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one saying %q", want)
	}
	if is != nil && !errors.Is(err, is) {
		t.Errorf("error %v is not %v", err, is)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}
