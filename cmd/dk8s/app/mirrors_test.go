package app

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// dk8s mirrors probes only the mirrors it is given (auto:LIST), here one
// registry of the test's that has every tag and one that is not there, and
// prints them ranked, as a table and as JSON.
func TestMirrorsTableAndJSON(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	good := strings.TrimPrefix(srv.URL, "http://") + "/google_containers"
	dead := closedAddr(t) + "/google_containers"
	lock, rel := noKubeletLock(t)
	n := len(rel.Images)

	stdout, stderr, err := run(t, nil, "mirrors", "--lock", lock, "--mirror", "auto:"+dead+","+good)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "MIRROR") || !strings.HasPrefix(lines[1], good) || !strings.HasPrefix(lines[2], dead) {
		t.Fatalf("dk8s mirrors printed:\n%s", stdout)
	}
	if f := strings.Fields(lines[1]); f[1] != "yes" || f[2] != itoa(n)+"/"+itoa(n) || f[4] != "1" {
		t.Errorf("the good mirror's line: %q", lines[1])
	}
	if f := strings.Fields(lines[2]); f[1] != "no" || f[4] != "-" {
		t.Errorf("the dead mirror's line: %q", lines[2])
	}
	if !strings.Contains(stderr, dead+" did not answer") || !strings.Contains(stderr, "connection refused") {
		t.Errorf("stderr should say why the dead mirror is not ranked: %q", stderr)
	}

	stdout, _, err = run(t, nil, "mirrors", "--lock", lock, "--mirror", good, "-o", "json")
	var rows []struct {
		Mirror    string `json:"mirror"`
		Reachable bool   `json:"reachable"`
		Tags, Of  int
		Rank      int `json:"rank"`
	}
	if err != nil || json.Unmarshal([]byte(stdout), &rows) != nil || len(rows) != 1 || rows[0].Mirror != good || !rows[0].Reachable || rows[0].Tags != n || rows[0].Of != n || rows[0].Rank != 1 {
		t.Errorf("dk8s mirrors -o json: %v\n%s", err, stdout)
	}
}

// A pull whose auto candidates all fail to answer stops before the
// engine, saying why each did not.
func TestPullAutoWithNoMirrorAnswering(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dead := closedAddr(t) + "/google_containers"
	lock, _ := noKubeletLock(t)
	// dk8s mirrors prints the table and fails, so a script can tell.
	stdout, stderr, err := run(t, nil, "mirrors", "--lock", lock, "--mirror", "auto:"+dead)
	var exit ExitError
	if !errors.As(err, &exit) || exit.Code != 1 || !strings.HasPrefix(stdout, "MIRROR") || !strings.Contains(stderr, "no mirror answered") {
		t.Errorf("dk8s mirrors with none answering: %v, stdout %q, stderr %q", err, stdout, stderr)
	}
	_, _, err = runFake(t, fakeHost(), "pull", "--lock", lock, "--mirror", "auto:"+dead)
	for _, want := range []string{"no mirror answered", dead, "connection refused"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v should say %q", err, want)
		}
	}
}

// closedAddr is a loopback address where nothing listens: a dead mirror.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
