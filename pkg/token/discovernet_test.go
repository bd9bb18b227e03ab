package token

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// answering is a server on 127.0.0.1 that answers every request with
// status and body, over TLS unless plain.
func answering(t *testing.T, plain bool, status int, body string) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	if plain {
		srv.Start()
	} else {
		srv.StartTLS()
	}
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(strings.TrimPrefix(srv.URL, "http://"), "https://")
}

func TestDiscoverTellsWhatAnswered(t *testing.T) {
	pins := []string{zeroHash}
	status := func(code int, reason string) string {
		return fmt.Sprintf(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"configmaps \"cluster-info\" is %s","code":%d}`, reason, code)
	}
	for _, c := range []struct {
		name  string
		plain bool
		code  int
		body  string
		want  string
	}{
		{"an apiserver without cluster-info", false, 404, status(404, "not found"), "publishes no cluster-info, so no host can join it yet: run 'dk8s token create' on it"},
		{"an apiserver that does not let anonymous read it", false, 403, status(403, "forbidden"), "does not let a joining host read cluster-info: run 'dk8s token create' on the control plane"},
		{"an apiserver that refuses anonymous requests", false, 401, status(401, "Unauthorized"), "refuses requests without credentials (--anonymous-auth=false)"},
		{"a web server", false, 404, "<html>not found</html>", "is not a Kubernetes apiserver (it answered 404 Not Found to the cluster-info request)"},
		{"a JSON service", false, 200, `{"hello":"world"}`, "is not a Kubernetes apiserver (its answer for cluster-info is not a ConfigMap)"},
		{"a plain-HTTP server", true, 200, "ok", "is not a Kubernetes apiserver (it does not speak TLS)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr := answering(t, c.plain, c.code, c.body)
			_, err := Discover(context.Background(), addr, testToken, pins)
			checkErr(t, err, nil, addr, c.want)
		})
	}
}

func TestDiscoverOfAnUnreachableServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	_, err = Discover(context.Background(), "https://"+addr, testToken, []string{zeroHash})
	checkErr(t, err, ErrUnreachable, "cannot be reached at "+addr, "the apiserver listens on 6443", "no firewall")
}

// hanging is a TLS server that accepts requests and never answers them.
func hanging(t *testing.T) string {
	t.Helper()
	done := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-done }))
	t.Cleanup(func() { close(done); srv.Close() })
	return srv.URL
}

func TestDiscoverIsBounded(t *testing.T) {
	pins := []string{zeroHash}
	t.Run("by the context", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := Discover(ctx, hanging(t), testToken, pins)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
			t.Errorf("Discover past its context's deadline: %v after %s", err, time.Since(start))
		}
		cancelled, cancel2 := context.WithCancel(context.Background())
		cancel2()
		if _, err := Discover(cancelled, hanging(t), testToken, pins); !errors.Is(err, context.Canceled) {
			t.Errorf("Discover with a cancelled context: %v", err)
		}
	})
	t.Run("by its own timeout", func(t *testing.T) {
		defer func(d time.Duration) { requestTimeout = d }(requestTimeout)
		requestTimeout = 200 * time.Millisecond
		_, err := Discover(context.Background(), hanging(t), testToken, pins)
		checkErr(t, err, ErrUnreachable, "did not answer within 200ms", "no firewall")
	})
}

func TestServerURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://192.0.2.10:6443":  "https://192.0.2.10:6443",
		"192.0.2.10:6443":          "https://192.0.2.10:6443",
		"192.0.2.10":               "https://192.0.2.10:6443",
		"https://cp.example/":      "https://cp.example:6443",
		"https://[2001:db8::1]":    "https://[2001:db8::1]:6443",
		" https://cp.example:443 ": "https://cp.example:443",
	} {
		if u, err := serverURL(in); err != nil || u.String() != want {
			t.Errorf("serverURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	for _, bad := range []string{"http://192.0.2.10:6443", "", "https://", "https://:6443"} {
		if _, err := serverURL(bad); err == nil || !strings.Contains(err.Error(), "is not https://HOST:PORT") {
			t.Errorf("serverURL(%q): %v", bad, err)
		}
	}
}

func TestDiscoverChecksItsInput(t *testing.T) {
	srv := "https://192.0.2.10:6443" // never reached: the input is refused first
	for _, c := range []struct {
		tok  Token
		pins []string
		want string
	}{
		{Token{ID: "abc", Secret: "x"}, []string{zeroHash}, "is not a join token"},
		{testToken, []string{"sha256:abc"}, "is not sha256:<64 hex digits>"},
		{testToken, nil, "no CA hash given"},
	} {
		_, err := Discover(context.Background(), srv, c.tok, c.pins)
		checkErr(t, err, nil, c.want)
	}
}

// zeroHash is a well-formed hash of no CA.
var zeroHash = "sha256:" + strings.Repeat("0", 64)
