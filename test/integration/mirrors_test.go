package integration

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// proxyMirror serves the harness's flat registry (127.0.0.1:5001) on a port
// of its own, through change when set, and counts the requests it answers:
// a mirror whose behaviour the test decides.
type proxyMirror struct {
	addr string
	hits atomic.Int32
}

func newProxyMirror(t *testing.T, change func(w http.ResponseWriter, r *http.Request) bool) *proxyMirror {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxyMirror{addr: l.Addr().String()}
	upstream := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: "127.0.0.1:5001"})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		if change != nil && change(w, r) {
			return
		}
		upstream.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return p
}

func (p *proxyMirror) mirror() string { return p.addr + "/google_containers" }

// The "done when" of --mirror auto: a fast, a slow, a dead and a
// tag-missing mirror, each the harness's real registry behind a proxy of
// the test's, ranked as a user would want them; the pull goes through the
// fast one, by the ranking 'dk8s mirrors' just made and remembered.
func TestMirrorAutoRanks(t *testing.T) {
	engine, rel := harness(t)
	fast := newProxyMirror(t, nil)
	slow := newProxyMirror(t, func(http.ResponseWriter, *http.Request) bool {
		time.Sleep(400 * time.Millisecond)
		return false
	})
	missing := newProxyMirror(t, func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/google_containers/coredns/manifests/") {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
			return true
		}
		return false
	})
	dead := closedAddr(t) + "/google_containers"

	// Candidates in the worst order, so the ranking is the probe's doing.
	auto := "auto:" + strings.Join([]string{dead, slow.mirror(), missing.mirror(), fast.mirror()}, ",")
	env := []string{"XDG_CACHE_HOME=" + t.TempDir()}
	n := len(rel.Images)

	r := dk8s(t, env, "mirrors", "--mirror", auto)
	if r.code != 0 {
		t.Fatalf("dk8s mirrors failed:\n%s", r)
	}
	rows := strings.Split(strings.TrimSpace(r.stdout), "\n")
	want := [][]string{
		{"MIRROR", "REACHABLE", "TAGS", "LATENCY", "RANK"},
		{fast.mirror(), "yes", itoa(n) + "/" + itoa(n), "", "1"},
		{slow.mirror(), "yes", itoa(n) + "/" + itoa(n), "", "2"},
		{missing.mirror(), "yes", itoa(n-1) + "/" + itoa(n) + " missing: coredns", "", "3"},
		{dead, "no", "-", "-", "-"},
	}
	if len(rows) != len(want) {
		t.Fatalf("dk8s mirrors printed %d lines, want %d:\n%s", len(rows), len(want), r)
	}
	for i, w := range want {
		cols := splitColumns(rows[i])
		if len(cols) != 5 {
			t.Fatalf("line %q has %d columns, want 5", rows[i], len(cols))
		}
		for j := range w {
			if w[j] != "" && cols[j] != w[j] {
				t.Errorf("line %d, %s = %q, want %q\n%s", i, want[0][j], cols[j], w[j], r.stdout)
			}
		}
	}
	if lat, err := time.ParseDuration(splitColumns(rows[2])[3]); err != nil || lat < 400*time.Millisecond {
		t.Errorf("the slow mirror's latency %q should show its 400ms delay (%v)", splitColumns(rows[2])[3], err)
	}
	for _, w := range []string{dead + " did not answer", "connection refused", missing.mirror() + " lacks registry.k8s.io/coredns/coredns"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr should say %q:\n%s", w, r.stderr)
		}
	}

	t.Run("json", func(t *testing.T) {
		r := dk8s(t, env, "mirrors", "--mirror", auto, "-o", "json")
		var got []struct {
			Mirror    string `json:"mirror"`
			Reachable bool   `json:"reachable"`
			Tags      int    `json:"tags"`
			Of        int    `json:"of"`
			Rank      int    `json:"rank"`
			Missing   []struct {
				Image string `json:"image"`
			} `json:"missing"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
			t.Fatalf("dk8s mirrors -o json: %v\n%s", err, r)
		}
		if len(got) != 4 || got[0].Mirror != fast.mirror() || got[0].Rank != 1 || got[0].Tags != n || got[2].Missing[0].Image != imageOf(t, rel, "coredns") ||
			got[3].Mirror != dead || got[3].Reachable || got[3].Rank != 0 {
			t.Errorf("dk8s mirrors -o json = %+v", got)
		}
	})

	t.Run("pull goes through the fast mirror, by the remembered ranking", func(t *testing.T) {
		clean(t, engine, rel)
		probes := slow.hits.Load() + missing.hits.Load()
		r := dk8s(t, env, "pull", "--mirror", auto)
		if r.code != 0 {
			t.Fatalf("pull failed:\n%s", r)
		}
		assertComplete(t, engine, rel)
		for _, img := range rel.Images {
			if line := lineWith(r.stdout, img.Name); !strings.Contains(line, fast.mirror()) || !strings.Contains(line, "pulled") {
				t.Errorf("%s should be pulled from the fast mirror %s: %q", img.Name, fast.mirror(), line)
			}
		}
		if !strings.Contains(r.stderr, "1. "+fast.mirror()+" ("+itoa(n)+"/"+itoa(n)+" tags") || !strings.Contains(r.stderr, "probed ") || !strings.Contains(r.stderr, dead+" did not answer") {
			t.Errorf("stderr should give the remembered ranking, fast first:\n%s", r.stderr)
		}
		if got := slow.hits.Load() + missing.hits.Load(); got != probes {
			t.Errorf("the pull asked the slower mirrors %d more times: the ranking should have been remembered and the fast mirror had every image", got-probes)
		}
	})
}

// splitColumns splits a table line at runs of two or more spaces (the
// columns' gaps; a column such as "8/9 missing: coredns" holds single ones).
func splitColumns(line string) []string {
	var cols []string
	for _, c := range strings.Split(line, "  ") {
		if c = strings.TrimSpace(c); c != "" {
			cols = append(cols, c)
		}
	}
	return cols
}

func itoa(i int) string { return strconv.Itoa(i) }
