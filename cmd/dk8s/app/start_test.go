package app

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/bootstrap"
	"github.com/dk8s/dk8s/pkg/mirror"
)

func TestParseExtraArgs(t *testing.T) {
	got, err := parseExtraArgs([]string{
		"kube-apiserver:v=4",
		"kube-apiserver:--audit-log-path=/var/log/audit.log", // a flag as written on a command line
		"kube-apiserver:etcd-servers=https://127.0.0.1:2379", // the value holds ':'
		"kube-apiserver:feature-gates=A=true,B=false",        // and '='
		"kube-scheduler:v=2",
		"kube-scheduler:v=3", // the last one wins
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		"kube-apiserver": {"v": "4", "audit-log-path": "/var/log/audit.log", "etcd-servers": "https://127.0.0.1:2379", "feature-gates": "A=true,B=false"},
		"kube-scheduler": {"v": "3"},
	}
	if !maps.EqualFunc(got, want, maps.Equal) {
		t.Errorf("got %v\nwant %v", got, want)
	}

	for _, bad := range []string{"v=2", "kube-apiserver:v", ":v=2", "kube-apiserver:=2", "kube-apiserver:--=2", "kube-apiserver v=2"} {
		_, err := parseExtraArgs([]string{"etcd:v=1", bad})
		want := `--extra-args "` + bad + `" must be COMPONENT:FLAG=VALUE, e.g. kube-apiserver:v=4`
		if err == nil || err.Error() != want {
			t.Errorf("%q: error %v, want %q", bad, err, want)
		}
	}
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Every check of start's input comes before it connects to the engine:
// a refused start changes nothing.
func TestStartRefusesBadInputBeforeConnecting(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	misspelt := writeTemp(t, "start.yaml", "nodeName: n\nserviceCidr: 10.0.0.0/16\n")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--advertise-address", "300.1.1.1"}, `--advertise-address "300.1.1.1" is not an IP address`},
		{[]string{"--extra-args", "v=2"}, `--extra-args "v=2" must be COMPONENT:FLAG=VALUE`},
		{[]string{"--config", missing}, missing},
		{[]string{"--config", misspelt}, misspelt + ": yaml: unmarshal errors:\n  line 2: field serviceCidr not found"},
		{[]string{"--mirror", "aliyn"}, `unknown mirror "aliyn"`},
		{[]string{"--pull", "--mirror", ","}, "no mirror given"},
		{[]string{"--kubernetes-version", "v0.0.1"}, "kubernetes v0.0.1 is not in the image lock"},
		{[]string{"--control-plane-endpoint", "vip:http"}, `--control-plane-endpoint "vip:http": give HOST or HOST:PORT`},
		{[]string{"--control-plane-endpoint", "https://vip"}, `give HOST or HOST:PORT`},
		{[]string{"--etcd-snapshot-interval", "-1h"}, "--etcd-snapshot-interval -1h0m0s is negative"},
		{[]string{"--etcd-snapshot-retention", "0"}, "--etcd-snapshot-retention 0: keep at least 1"},
		{[]string{"--profile", "tiny"}, `--profile "tiny": use one of default, small`},
		{[]string{"--proxy-mode", "ipvs"}, `--proxy-mode "ipvs": use one of iptables, nftables`},
	} {
		args := append([]string{"start", "--dir", dir}, c.args...)
		connected := false
		_, stderr, err := runWith(t, func(context.Context) (engine, error) { connected = true; return nil, errNoEngine }, nil, args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("dk8s %s: error %v, want one saying %q", strings.Join(args, " "), err, c.want)
		}
		if connected {
			t.Errorf("dk8s %s connected to the engine before refusing", strings.Join(args, " "))
		}
		if stderr != "" {
			t.Errorf("dk8s %s said %q before refusing", strings.Join(args, " "), stderr)
		}
	}
}

// start --pull pulls through --mirror before anything else; when the pull
// fails, start stops there.
func TestStartPullsThroughTheMirrorsFirst(t *testing.T) {
	dir := t.TempDir()
	fake := fakeHost()
	_, stderr, err := runFake(t, fake, "start", "--dir", dir, "--pull", "--mirror", "aliyun")
	if err == nil {
		t.Fatal("start --pull with no image to be had should fail")
	}
	pulls := fake.Mutations("pull")
	if len(pulls) == 0 {
		t.Fatalf("start --pull pulled nothing: %v\n%s", err, stderr)
	}
	aliyun, _ := mirror.Parse("aliyun")
	for _, p := range pulls {
		if !strings.HasPrefix(p, "pull "+aliyun.Prefix+"/") {
			t.Errorf("start --pull --mirror aliyun called %q", p)
		}
	}
	if m := fake.Mutations("create", "start", "stop", "remove"); len(m) != 0 || strings.Contains(stderr, "Starting Kubernetes") {
		t.Errorf("start went on after a failed pull: %v\n%s", m, stderr)
	}
}

func TestStartEventsOffATerminal(t *testing.T) {
	var errb strings.Builder
	show := startEvents(&globals{streams: Streams{Err: &errb}})
	show(bootstrap.Event{Message: "pulling etcd"})
	show(bootstrap.Event{Message: "etcd is healthy", Done: true})
	show(bootstrap.Event{Message: "swap is on", Warning: true})
	if want := "  pulling etcd\n✓ etcd is healthy\n! swap is on\n"; errb.String() != want {
		t.Errorf("start's progress off a terminal: %q, want %q, uncolored", errb.String(), want)
	}
}

func TestParseEndpoint(t *testing.T) {
	for in, want := range map[string]string{"192.0.2.100": "192.0.2.100:6443", "k8s.example.com:8443": "k8s.example.com:8443", "[2001:db8::1]:6443": "[2001:db8::1]:6443"} {
		if got, err := parseEndpoint(in); err != nil || got != want {
			t.Errorf("parseEndpoint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// start --pull --mirror auto:LIST ranks LIST before it pulls: the mirror
// with every tag is pulled from first, though named last.
func TestStartPullsThroughTheAutoRanking(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	registry := func(has bool) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !has && r.URL.Path != "/v2/" {
				http.NotFound(w, r)
			}
		}))
		t.Cleanup(srv.Close)
		return strings.TrimPrefix(srv.URL, "http://") + "/google_containers"
	}
	lacking, good := registry(false), registry(true)
	fake := fakeHost()
	_, stderr, err := runFake(t, fake, "start", "--dir", t.TempDir(), "--pull", "--mirror", "auto:"+lacking+","+good)
	if err == nil {
		t.Fatal("start --pull with no image to be had should fail")
	}
	if !strings.Contains(stderr, "1. "+good) || !strings.Contains(stderr, "2. "+lacking+" (0/") {
		t.Errorf("start should say the ranking, %s first:\n%s", good, stderr)
	}
	pulls := fake.Mutations("pull")
	if len(pulls) == 0 || !strings.HasPrefix(pulls[0], "pull "+good+"/") {
		t.Errorf("the first pull should be from %s: %v", good, pulls)
	}
}
