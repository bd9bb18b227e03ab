package mirror

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var probeImages = []string{
	"registry.k8s.io/kube-apiserver:v1.37.2",
	"registry.k8s.io/coredns/coredns:v1.14.6",
	"registry.k8s.io/pause:3.10.2",
}

// flatRegistry serves a flat mirror's manifests under /v2/google_containers
// for HEAD and GET, less those in lacking, each answer after delay. It
// counts the requests it answers.
func flatRegistry(t *testing.T, delay time.Duration, lacking ...string) (Mirror, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		time.Sleep(delay)
		if r.URL.Path == "/v2/" {
			return
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/google_containers/"), "/manifests/")
		for _, l := range lacking {
			if l == name {
				http.NotFound(w, r)
				return
			}
		}
		w.Header().Set("Content-Type", mediaOCIIndex)
	}))
	t.Cleanup(srv.Close)
	m, err := Parse(strings.TrimPrefix(srv.URL, "http://") + "/google_containers")
	if err != nil {
		t.Fatal(err)
	}
	return m, &hits
}

// deadAddress is a loopback port nothing listens on.
func deadAddress(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestProbeAllRanks(t *testing.T) {
	fast, _ := flatRegistry(t, 0)
	slow, _ := flatRegistry(t, 150*time.Millisecond)
	lacking, _ := flatRegistry(t, 0, "coredns")
	dead, err := Parse(deadAddress(t) + "/google_containers")
	if err != nil {
		t.Fatal(err)
	}
	probes := ProbeAll(context.Background(), &Registry{}, []Mirror{dead, lacking, slow, fast}, probeImages, time.Second)
	var order []Mirror
	for _, p := range probes {
		order = append(order, p.Mirror)
	}
	if want := []Mirror{fast, slow, lacking, dead}; !equalMirrors(order, want) {
		t.Fatalf("ranked %v, want %v", order, want)
	}
	for i, want := range []struct {
		rank, have int
		reachable  bool
	}{{1, 3, true}, {2, 3, true}, {3, 2, true}, {0, 0, false}} {
		p := probes[i]
		if p.Rank != want.rank || (p.Reachable && p.Have() != want.have) || p.Reachable != want.reachable {
			t.Errorf("%s: rank %d, %d/%d images, reachable %v; want rank %d, %d, %v", p.Mirror, p.Rank, p.Have(), p.Images, p.Reachable, want.rank, want.have, want.reachable)
		}
	}
	if p := probes[2]; len(p.Missing) != 1 || p.Missing[0].Image != "registry.k8s.io/coredns/coredns:v1.14.6" || !strings.Contains(p.Missing[0].Reason, "not found") {
		t.Errorf("the lacking mirror's missing images: %+v", p.Missing)
	}
	if p := probes[1]; p.Latency < 150*time.Millisecond {
		t.Errorf("the slow mirror's latency %s is under its delay", p.Latency)
	}
	if p := probes[3]; !strings.Contains(p.Err, "connection refused") {
		t.Errorf("the dead mirror's error %q should say the connection was refused", p.Err)
	}
	r := Ranking{Probes: probes}
	if got, err := r.Order(); err != nil || !equalMirrors(got, []Mirror{fast, slow, lacking}) {
		t.Errorf("Order = %v, %v; want the three that answered, best first", got, err)
	}
	if _, err := (Ranking{Probes: probes[3:]}).Order(); !errors.Is(err, ErrNoMirrorAnswered) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Order with none answering = %v", err)
	}
}

// A mirror not known to serve docker.io lacks its images without being
// asked; one that does not answer in time is not waited for.
func TestProbeNotServedAndTimeout(t *testing.T) {
	m, hits := flatRegistry(t, 0)
	m.Hub = ""
	p := ProbeAll(context.Background(), &Registry{}, []Mirror{m}, []string{"docker.io/flannel/flannel:v0.28.10", probeImages[0]}, time.Second)[0]
	if p.Have() != 1 || len(p.Missing) != 1 || !strings.Contains(p.Missing[0].Reason, "not known to serve docker.io") || hits.Load() != 2 {
		t.Errorf("probe %+v after %d requests; want flannel missing, not asked", p, hits.Load())
	}
	stuck, _ := flatRegistry(t, 700*time.Millisecond)
	start := time.Now()
	p = ProbeAll(context.Background(), &Registry{}, []Mirror{stuck}, probeImages, 200*time.Millisecond)[0]
	if time.Since(start) > 600*time.Millisecond || p.Reachable || p.Rank != 0 {
		t.Errorf("a mirror slower than the timeout: %+v after %s", p, time.Since(start))
	}
}

// TestRankIgnoresImagesNotServed: a quick mirror that serves no docker.io
// image (Aliyun's) outranks a slower one that serves both: the pull takes
// docker.io's images from the next mirror anyway.
func TestRankIgnoresImagesNotServed(t *testing.T) {
	quick, _ := flatRegistry(t, 0)
	quick.Hub = ""
	slow, _ := flatRegistry(t, 150*time.Millisecond)
	lacking, _ := flatRegistry(t, 0, "coredns")
	images := append([]string{"docker.io/flannel/flannel:v0.28.10"}, probeImages...)
	probes := ProbeAll(context.Background(), &Registry{}, []Mirror{lacking, slow, quick}, images, time.Second)
	var order []Mirror
	for _, p := range probes {
		order = append(order, p.Mirror)
	}
	if want := []Mirror{quick, slow, lacking}; !equalMirrors(order, want) {
		t.Errorf("ranked %v, want %v", order, want)
	}
	if p := probes[0]; p.Have() != len(images)-1 || !p.Missing[0].NotServed {
		t.Errorf("the quick mirror still shows flannel missing, as not served: %+v", p)
	}
}

func TestRankRemembers(t *testing.T) {
	fast, hits := flatRegistry(t, 0)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	cache := &RankCache{Path: filepath.Join(t.TempDir(), "dk8s", "mirrors.json"), TTL: time.Hour, Now: func() time.Time { return now }}
	opts := RankOptions{Registry: &Registry{}, Cache: cache}
	rank := func(images []string) Ranking {
		r := Rank(context.Background(), []Mirror{fast}, images, opts)
		if r.StoreErr != nil {
			t.Fatal(r.StoreErr)
		}
		return r
	}
	first := rank(probeImages)
	n := hits.Load()
	if first.Cached || n == 0 {
		t.Fatalf("the first ranking should probe: cached %v, %d requests", first.Cached, n)
	}
	now = now.Add(59 * time.Minute)
	if r := rank(probeImages); !r.Cached || hits.Load() != n || r.Probes[0].Rank != 1 || r.Probes[0].Mirror != fast {
		t.Errorf("within the hour the ranking should be remembered: %+v, %d requests", r, hits.Load()-n)
	}
	if r := rank(probeImages[:1]); r.Cached {
		t.Error("another image set should be probed anew")
	}
	opts.Refresh = true
	if r := rank(probeImages); r.Cached {
		t.Error("Refresh should probe anew")
	}
	opts.Refresh = false
	now = now.Add(61 * time.Minute)
	if r := rank(probeImages); r.Cached {
		t.Error("after the hour the ranking should be probed anew")
	}
}

// TestRankForgetsNoAnswer: a probe that no mirror answered (this host's
// network down at that moment) is not remembered, so that the next
// --mirror auto, once the network is back, probes again instead of failing
// for an hour on the remembered "no mirror answered".
func TestRankForgetsNoAnswer(t *testing.T) {
	dead, err := Parse(deadAddress(t) + "/google_containers")
	if err != nil {
		t.Fatal(err)
	}
	cache := &RankCache{Path: filepath.Join(t.TempDir(), "mirrors.json"), TTL: time.Hour}
	opts := RankOptions{Registry: &Registry{}, Cache: cache, Timeout: time.Second}
	r := Rank(context.Background(), []Mirror{dead}, probeImages, opts)
	if _, err := r.Order(); !errors.Is(err, ErrNoMirrorAnswered) {
		t.Fatalf("Order = %v, want ErrNoMirrorAnswered", err)
	}
	if r := Rank(context.Background(), []Mirror{dead}, probeImages, opts); r.Cached {
		t.Error("a ranking in which no mirror answered was remembered")
	}
}

func TestParseChoice(t *testing.T) {
	c, err := ParseChoice("auto")
	if err != nil || !c.Auto || len(c.Mirrors) != len(Catalogue()) {
		t.Errorf("auto = %+v, %v; want the catalogue, probed", c, err)
	}
	c, err = ParseChoice("auto:daocloud,127.0.0.1:5001/google_containers")
	if err != nil || !c.Auto || len(c.Mirrors) != 2 || c.Mirrors[0].Name != "daocloud" || c.Mirrors[1].Prefix != "127.0.0.1:5001/google_containers" {
		t.Errorf("auto:LIST = %+v, %v", c, err)
	}
	c, err = ParseChoice("aliyun,daocloud")
	if err != nil || c.Auto || len(c.Mirrors) != 2 {
		t.Errorf("a plain list = %+v, %v", c, err)
	}
	for _, bad := range []string{"auto:", "auto:nosuch", "auto,aliyun"} {
		if _, err := ParseChoice(bad); err == nil {
			t.Errorf("%q should be refused", bad)
		}
	}
}

func equalMirrors(a, b []Mirror) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
