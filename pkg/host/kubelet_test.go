package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/host/hosttest"
	"github.com/dk8s/dk8s/pkg/images"
)

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
	got, version, err := FindKubelet(context.Background(), Exec{}, path, t.TempDir(), rel, nil)
	if err != nil || got != path || version != "v1.36.3" {
		t.Fatalf("the given kubelet should be used: %s %s %v", got, version, err)
	}
	rel.Kubernetes = "v1.36.0"
	if _, _, err := FindKubelet(context.Background(), Exec{}, path, t.TempDir(), rel, nil); err == nil || !strings.Contains(err.Error(), "newer than the apiserver v1.36.0") {
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

func TestFindKubeletFetchesWhenNoneIsOnTheHost(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	body := []byte("#!/bin/sh\necho 'Kubernetes v1.37.2'\n")
	srv := fileServer(t, map[string][]byte{"/files/dl.k8s.io/release/v1.37.2/bin/" + here + "/kubelet": body})
	dir := t.TempDir()
	rel := release(binary("kubelet", sum(body)))
	got, version, err := FindKubelet(context.Background(), Exec{}, "", dir, rel, fetcher(srv.URL+"/files/dl.k8s.io"))
	if err != nil || got != filepath.Join(dir, "bin", "kubelet") || version != "v1.37.2" {
		t.Fatalf("the lock's kubelet should be fetched and run: %s %s %v", got, version, err)
	}
	rel = release(binary("kubelet", ""))
	_, _, err = FindKubelet(context.Background(), Exec{}, "", t.TempDir(), rel, fetcher(srv.URL+"/files/dl.k8s.io"))
	for _, want := range []string{"no kubelet on this host", "pins no sha256 for kubelet v1.37.2", "cannot be trusted", "pass --kubelet-binary"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("an unpinned kubelet: want %q in %v", want, err)
		}
	}

	// Pinned, and no mirror has it: the mirrors are what to fix, not the lock.
	rel = release(binary("kubelet", sum([]byte("another kubelet"))))
	_, _, err = FindKubelet(context.Background(), Exec{}, "", t.TempDir(), rel, fetcher(srv.URL+"/nowhere"))
	if err == nil || !strings.Contains(err.Error(), "--binary-mirror") || strings.Contains(err.Error(), "record its sum") {
		t.Errorf("a pinned kubelet no mirror served should point at --binary-mirror, not at the lock: %v", err)
	}
}

// A kubelet linked against glibc, on a host without glibc's loader (a
// musl host), is refused before it is run, naming the loader: its exec
// would fail with a bare "no such file or directory".
func TestKubeletWhoseLoaderIsMissing(t *testing.T) {
	dynamic, err := os.ReadFile("/bin/ls") // glibc's, as dl.k8s.io's kubelet is
	if err != nil {
		t.Fatal(err)
	}
	const loader = "/lib64/ld-linux-x86-64.so.2"
	if !strings.Contains(string(dynamic), loader) {
		t.Fatalf("/bin/ls names no %s: this test needs a glibc host's binary", loader)
	}
	// The same binary, naming a loader of the same length no host has.
	musl := strings.Replace(string(dynamic), loader, "/lib64/ld-absent-x86-64.so.2"[:len(loader)], 1)
	path := filepath.Join(t.TempDir(), "kubelet")
	if err := os.WriteFile(path, []byte(musl), 0o755); err != nil {
		t.Fatal(err)
	}
	r := &hosttest.Runner{}
	_, _, err = FindKubelet(context.Background(), r, path, t.TempDir(), &images.Release{Kubernetes: "v1.37.2"}, nil)
	if err == nil || !strings.Contains(err.Error(), "this host has not its loader /lib64/ld-absent-x86-64.s") || !strings.Contains(err.Error(), "--kubelet-binary") {
		t.Errorf("want an error naming the missing loader: %v", err)
	}
	if len(r.Calls) > 0 {
		t.Errorf("a kubelet that cannot run should not be run: %q", r.Calls)
	}
	// With its loader here, it is asked its version.
	if err := checkLoader("/bin/ls"); err != nil {
		t.Errorf("a binary whose loader is here: %v", err)
	}
}
