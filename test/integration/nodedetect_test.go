package integration

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/host"
	"github.com/dk8s/dk8s/pkg/images"
)

// kubeletServer serves the harness's kubelet as a binary mirror would, at
// /release/VERSION/bin/OS/ARCH/kubelet.
func kubeletServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.StripPrefix("/release/v1.37.2/bin/"+runtime.GOOS+"/"+runtime.GOARCH+"/",
		http.FileServer(http.Dir(filepath.Dir(testLock)))))
	t.Cleanup(srv.Close)
	return srv
}

// lockWithKubelet writes the harness's lock with its kubelet fetched from
// url and pinned to sum.
func lockWithKubelet(t *testing.T, url, sum string) string {
	t.Helper()
	lock := readTestLock(t)
	rel, _ := lock.Release("")
	rel.Binaries = []images.Binary{{Name: "kubelet", URL: url + "/release/v1.37.2/bin/{os}/{arch}/kubelet",
		SHA256: map[string]string{runtime.GOOS + "/" + runtime.GOARCH: sum}}}
	return writeLock(t, lock)
}

func kubeletSum(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(filepath.Dir(testLock), "kubelet"))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(data))
}

func TestNodeDetection(t *testing.T) {
	engine, _ := harness(t)
	c := newCluster(t)

	cases := []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"a kubelet newer than the apiserver", nil, []string{"--kubelet-binary", fakeKubelet(t, "v1.38.0")},
			[]string{"kubelet v1.38.0", "is newer than the apiserver v1.37.2", "--kubelet-binary"}},
		{"a kubelet too old", nil, []string{"--kubelet-binary", fakeKubelet(t, "v1.33.1")},
			[]string{"more than three minor versions older"}},
		{"no container runtime", []string{"PATH=/nonexistent"}, nil,
			[]string{"no containerd on this host", "apt-get install containerd"}},
		{"a downloaded kubelet that does not match its pin", nil, []string{"--lock", lockWithKubelet(t, kubeletServer(t).URL, strings.Repeat("0", 64))},
			[]string{"has sha256 " + kubeletSum(t), "images.lock pins " + strings.Repeat("0", 64), "refusing it"}},
		{"a kubelet the lock does not pin", nil, []string{"--lock", lockWithKubelet(t, kubeletServer(t).URL, "")},
			[]string{"pins no sha256 for kubelet", "cannot be trusted"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := dk8s(t, tc.env, append([]string{"start", "--dir", c.dir}, tc.args...)...)
			if r.code == 0 {
				t.Fatalf("start should fail:\n%s", r)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr should say %q:\n%s", w, r)
				}
			}
			assertNoControlPlane(t, engine, c.dir)
		})
	}
}

// fakeKubelet is a script that reports version as a kubelet would.
func fakeKubelet(t *testing.T, version string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubelet")
	os.WriteFile(path, []byte("#!/bin/sh\necho 'Kubernetes "+version+"'\n"), 0o755)
	return path
}

// TestSystemdUnitsVerify checks the units dk8s installs where systemd is
// PID 1 with systemd's own verifier (the harness installs it), for every
// warning systemd would log; TestNodeUnderSystemd runs them end to end.
func TestSystemdUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is missing: test/harness/engine.sh installs Debian's systemd package for it")
	}
	dir := t.TempDir()
	for name, unit := range map[string]string{
		"dk8s-containerd.service": host.SystemdUnit("containerd", "1.6.20", []string{"/usr/bin/containerd", "--config", "/var/lib/dk8s/containerd/config.toml"}, nil, []string{"docker.service"}),
		"dk8s-kubelet.service":    host.SystemdUnit("kubelet", "v1.37.2", []string{filepath.Join(filepath.Dir(testLock), "kubelet"), "--config=/var/lib/dk8s/kubelet/config.yaml"}, nil, []string{"dk8s-containerd.service"}),
	} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(unit), 0o644)
		out, err := exec.Command(analyze, "verify", path).CombinedOutput()
		if err != nil || strings.Contains(string(out), name+":") {
			t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out)
		}
	}
}
