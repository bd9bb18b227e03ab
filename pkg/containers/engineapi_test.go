package containers

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/moby/moby/client"
)

// engineAPI plays the HTTP API of a Docker Engine on a loopback port, for
// *Docker to talk to as it would to dockerd: it answers the version
// negotiation itself and every other request from the routes a test gives,
// recording each request so that the test can check what the client sent.
type engineAPI struct {
	t *testing.T
	// ping is the API-Version the daemon announces on /_ping; api is the
	// version the client must then use in every path.
	ping, api string
	// routes are keyed by "METHOD /path", the path without its /vX.Y
	// prefix and unescaped, e.g. "GET /images/registry.k8s.io/pause:3.10/json".
	routes map[string]http.HandlerFunc

	host string // tcp://127.0.0.1:PORT
	srv  *httptest.Server

	mu       sync.Mutex
	pings    int
	requests []apiRequest
}

// apiRequest is one versioned request the fake daemon received.
type apiRequest struct {
	Method, Path string
	Query        url.Values
	Header       http.Header
	Body         []byte
}

// newEngineAPI serves routes on 127.0.0.1, announcing API version 1.41 (that
// of Docker 20.10) unless the test sets ping and api before the first request.
func newEngineAPI(t *testing.T, routes map[string]http.HandlerFunc) *engineAPI {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &engineAPI{t: t, ping: "1.41", api: "1.41", routes: routes}
	f.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(f.serve)}}
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	f.host = "tcp://" + l.Addr().String()
	return f
}

func (f *engineAPI) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_ping" {
		f.mu.Lock()
		f.pings++
		f.mu.Unlock()
		w.Header().Set("API-Version", f.ping)
		w.Header().Set("OSType", "linux")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if r.Method == http.MethodGet {
			io.WriteString(w, "OK")
		}
		return
	}
	prefix := "/v" + f.api
	p, ok := strings.CutPrefix(r.URL.Path, prefix+"/")
	if !ok {
		f.t.Errorf("%s %s: want the negotiated API version in the path (%s)", r.Method, r.URL.Path, prefix)
		apiError(w, http.StatusBadRequest, "client version is not "+f.api)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.t.Errorf("%s %s: reading the body: %v", r.Method, r.URL.Path, err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	key := r.Method + " /" + p
	f.mu.Lock()
	f.requests = append(f.requests, apiRequest{Method: r.Method, Path: "/" + p, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body})
	f.mu.Unlock()
	h, ok := f.routes[key]
	if !ok {
		f.t.Errorf("unexpected request %s", key)
		apiError(w, http.StatusNotFound, "page not found")
		return
	}
	h(w, r)
}

// dial connects a *Docker to the fake daemon as FromEnv would, negotiating
// the API version on its first request.
func (f *engineAPI) dial() *Docker {
	f.t.Helper()
	c, err := client.New(client.WithHost(f.host))
	if err != nil {
		f.t.Fatal(err)
	}
	d := &Docker{c: c}
	f.t.Cleanup(func() { d.Close() })
	return d
}

// pinged counts the requests for /_ping.
func (f *engineAPI) pinged() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pings
}

// received lists the versioned requests made so far, as "METHOD /path".
func (f *engineAPI) received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.requests {
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}

// last is the last request made as "METHOD /path"; it fails the test when
// there was none.
func (f *engineAPI) last(key string) apiRequest {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.requests) - 1; i >= 0; i-- {
		if r := f.requests[i]; r.Method+" "+r.Path == key {
			return r
		}
	}
	f.t.Fatalf("no request %s among %d", key, len(f.requests))
	return apiRequest{}
}

// apiError answers as dockerd does when a call fails.
func apiError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"message": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// reply answers every request with v as JSON.
func reply(code int, v any) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, code, v) }
}

// fail answers every request with the daemon's error message msg.
func fail(code int, msg string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { apiError(w, code, msg) }
}

// status answers every request with an empty body.
func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// jsonStream answers with messages one JSON object a line, as dockerd
// streams the progress of a pull or a load.
func jsonStream(messages ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		for _, m := range messages {
			io.WriteString(w, m+"\r\n")
		}
	}
}

// frame is one record of Docker's multiplexed stream format: the stream
// (1 stdout, 2 stderr, 3 the daemon's own error), three zero bytes, the
// payload's length in big-endian, and the payload.
func frame(stream byte, payload string) []byte {
	h := make([]byte, 8, 8+len(payload))
	h[0] = stream
	binary.BigEndian.PutUint32(h[4:], uint32(len(payload)))
	return append(h, payload...)
}
