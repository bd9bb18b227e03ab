package host

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/host/hosttest"
	"github.com/dk8s/dk8s/pkg/images"
)

// kubeletRelease is a release whose lock fetches kubelet from srv, pinned
// to sum for this platform ("" pins nothing).
func kubeletRelease(srv *httptest.Server, sum string) *images.Release {
	return &images.Release{Kubernetes: "v1.37.2", Binaries: []images.Binary{{
		Name:   "kubelet",
		URL:    srv.URL + "/release/v1.37.2/bin/{os}/{arch}/kubelet",
		SHA256: map[string]string{runtime.GOOS + "/" + runtime.GOARCH: sum},
	}}}
}

func TestDownloadKubelet(t *testing.T) {
	body := []byte("#!/bin/sh\necho 'Kubernetes v1.37.2'\n")
	sum := fmt.Sprintf("%x", sha256.Sum256(body))
	var gets []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets = append(gets, r.URL.Path)
		if r.URL.Path != "/release/v1.37.2/bin/"+runtime.GOOS+"/"+runtime.GOARCH+"/kubelet" {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	}))
	defer srv.Close()
	ctx := context.Background()

	dir := t.TempDir()
	pinned, err := FetchKubelet(ctx, dir, kubeletRelease(srv, sum))
	if err != nil || !pinned {
		t.Fatalf("a pinned kubelet should be fetched: %v, %v", pinned, err)
	}
	dst := filepath.Join(dir, "bin", "kubelet")
	if data, err := os.ReadFile(dst); err != nil || string(data) != string(body) {
		t.Fatalf("%s should hold the download: %v", dst, err)
	}
	if st, _ := os.Stat(dst); st.Mode().Perm() != 0o755 {
		t.Errorf("the kubelet should be executable: %v", st.Mode())
	}
	if _, err := FetchKubelet(ctx, dir, kubeletRelease(srv, sum)); err != nil || len(gets) != 1 {
		t.Errorf("a kubelet already there with the pinned sum is not fetched again (%d fetches, %v)", len(gets), err)
	}

	bad := strings.Repeat("0", 64)
	err = downloadKubelet(ctx, kubeletRelease(srv, bad), filepath.Join(t.TempDir(), "kubelet"))
	if err == nil || !strings.Contains(err.Error(), "has sha256 "+sum+", but images.lock pins "+bad+": refusing it") {
		t.Errorf("a download that does not match its pin should be refused: %v", err)
	}
	unpinned := filepath.Join(t.TempDir(), "kubelet")
	err = downloadKubelet(ctx, kubeletRelease(srv, ""), unpinned)
	if err == nil || !strings.Contains(err.Error(), "pins no sha256 for kubelet v1.37.2") || !strings.Contains(err.Error(), "cannot be trusted") {
		t.Errorf("an unpinned download should be refused: %v", err)
	}
	if _, err := os.Stat(unpinned); err == nil {
		t.Error("a refused kubelet must not be kept")
	}
	if pinned, err := FetchKubelet(ctx, t.TempDir(), kubeletRelease(srv, "")); pinned || err != nil {
		t.Errorf("pull fetches no unpinned kubelet, and that is no error: %v, %v", pinned, err)
	}

	missing := kubeletRelease(srv, sum)
	missing.Binaries[0].URL = srv.URL + "/nothing"
	if err := downloadKubelet(ctx, missing, filepath.Join(t.TempDir(), "kubelet")); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Errorf("a missing download should say so: %v", err)
	}
	if err := downloadKubelet(ctx, &images.Release{Kubernetes: "v1.37.2"}, filepath.Join(t.TempDir(), "kubelet")); err == nil || !strings.Contains(err.Error(), "pass --kubelet-binary") {
		t.Errorf("a lock without a kubelet should ask for one: %v", err)
	}
}

func TestKubeletVersionSkew(t *testing.T) {
	cases := []struct {
		reports string
		want    string // the version found, or a part of the error
		ok      bool
	}{
		{"Kubernetes v1.37.2", "v1.37.2", true},
		{"Kubernetes v1.37.1", "v1.37.1", true},
		{"Kubernetes v1.34.9", "v1.34.9", true},
		{"Kubernetes v1.37.3", "kubelet v1.37.3 at /k is newer than the apiserver v1.37.2", false},
		{"Kubernetes v1.38.0", "is newer than the apiserver v1.37.2; Kubernetes forbids that: pass --kubelet-binary", false},
		{"Kubernetes v1.33.1", "more than three minor versions older than the apiserver v1.37.2", false},
		{"kubelet from the future", `reports "kubelet from the future": not a kubelet version`, false},
	}
	for _, tc := range cases {
		r := &hosttest.Runner{Answer: func(string, int) ([]byte, error) { return []byte(tc.reports + "\n"), nil }}
		got, err := checkKubeletVersion(context.Background(), r, "/k", "v1.37.2")
		switch {
		case tc.ok && (err != nil || got != tc.want):
			t.Errorf("%s: got %q, %v", tc.reports, got, err)
		case !tc.ok && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: want an error with %q, got %v", tc.reports, tc.want, err)
		}
		if strings.Join(r.Calls, "|") != "/k --version" {
			t.Errorf("the version is asked of the kubelet itself: %q", r.Calls)
		}
	}
	broken := &hosttest.Runner{Answer: func(string, int) ([]byte, error) { return nil, errors.New("exec format error") }}
	if _, err := checkKubeletVersion(context.Background(), broken, "/k", "v1.37.2"); err == nil || !strings.Contains(err.Error(), "running /k --version: exec format error") {
		t.Errorf("a kubelet that does not run should say so: %v", err)
	}
}

func TestFindKubeletGiven(t *testing.T) {
	// A script that answers as a kubelet would, run for real.
	path := filepath.Join(t.TempDir(), "kubelet")
	if err := os.WriteFile(path, []byte("#!/bin/sh\necho 'Kubernetes v1.36.3'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	rel := &images.Release{Kubernetes: "v1.37.2"}
	got, version, err := FindKubelet(context.Background(), Exec{}, path, t.TempDir(), rel)
	if err != nil || got != path || version != "v1.36.3" {
		t.Fatalf("the given kubelet should be used: %s %s %v", got, version, err)
	}
	rel.Kubernetes = "v1.36.0"
	if _, _, err := FindKubelet(context.Background(), Exec{}, path, t.TempDir(), rel); err == nil || !strings.Contains(err.Error(), "newer than the apiserver v1.36.0") {
		t.Errorf("a given kubelet newer than the apiserver is refused too: %v", err)
	}
}

func TestLoopbackResolvers(t *testing.T) {
	f := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(f, []byte("# Docker's\nnameserver 127.0.0.11\nnameserver 192.0.2.53\noptions ndots:0\n"), 0o644)
	if got := loopbackResolvers(f); len(got) != 1 || got[0] != "127.0.0.11" {
		t.Errorf("got %v, want [127.0.0.11]", got)
	}
}
