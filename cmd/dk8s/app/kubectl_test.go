package app

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeKubectl is a kubectl that prints its arguments, one a line, and its
// KUBECONFIG, and exits with the code in $FAKE_EXIT.
const fakeKubectl = "#!/bin/sh\nfor a in \"$@\"; do echo \"arg:$a\"; done\necho \"KUBECONFIG=$KUBECONFIG\"\nexit ${FAKE_EXIT:-0}\n"

// clusterDir is a cluster directory as start leaves it, as far as
// 'dk8s kubectl' looks: an admin.conf.
func clusterDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "admin.conf"), []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestKubectlPassesEverythingThrough(t *testing.T) {
	dir := clusterDir(t)
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	os.WriteFile(filepath.Join(dir, "bin", "kubectl"), []byte(fakeKubectl), 0o755)
	t.Setenv("FAKE_EXIT", "3")
	args := []string{"kubectl", "-n", "kube-system", "get", "pods", "--lock", "x", "--dir=y", "-o", "jsonpath={.items[*].metadata.name}", "--help"}
	stdout, stderr, err := runKubectl(t, map[string]string{"DK8S_DIR": dir}, args[1:]...)
	var exit ExitError
	if !errors.As(err, &exit) || exit.Code != 3 {
		t.Errorf("kubectl's exit code should be dk8s's: %v\n%s", err, stderr)
	}
	var want strings.Builder
	for _, a := range args[1:] {
		want.WriteString("arg:" + a + "\n")
	}
	want.WriteString("KUBECONFIG=" + filepath.Join(dir, "admin.conf") + "\n")
	if stdout != want.String() {
		t.Errorf("kubectl got:\n%s\nwant:\n%s", stdout, want.String())
	}
}

func TestKubectlWithoutACluster(t *testing.T) {
	dir := t.TempDir()
	_, _, err := runKubectl(t, map[string]string{"DK8S_DIR": dir, "DK8S_MIRROR": "auto"}, "get", "nodes")
	if err == nil || !strings.Contains(err.Error(), "no cluster in "+dir+" (it has no admin.conf): start one with 'dk8s start', or set DK8S_DIR") {
		t.Errorf("want an error saying there is no cluster and what to run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bin")); err == nil {
		t.Error("nothing is fetched for a cluster that is not there")
	}

	// kubectl's own help needs no cluster: it is kubectl's to give.
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	os.WriteFile(filepath.Join(dir, "bin", "kubectl"), []byte(fakeKubectl), 0o755)
	for _, args := range [][]string{{"--help"}, {"get", "-h"}, {}} {
		stdout, _, err := runKubectl(t, map[string]string{"DK8S_DIR": dir}, args...)
		if err != nil || !strings.Contains(stdout, "KUBECONFIG=") {
			t.Errorf("dk8s kubectl %v should run kubectl for its help: %v\n%s", args, err, stdout)
		}
	}
}

func TestKubectlFetchesAMissingKubectl(t *testing.T) {
	files := map[string][]byte{"kubectl": []byte(fakeKubectl)}
	lock, rel := binaryLock(t, files)
	base := daocloudFiles(t, rel.Kubernetes, files)
	dir := clusterDir(t)
	stdout, stderr, err := runKubectl(t, map[string]string{"DK8S_DIR": dir, "DK8S_LOCK": lock, "DK8S_BINARY_MIRROR": base}, "version")
	if err != nil {
		t.Fatalf("kubectl version: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "arg:version\n") || !strings.Contains(stderr, "kubectl "+rel.Kubernetes+": "+itoa(len(fakeKubectl))+" B from "+base+", sha256 verified") {
		t.Errorf("kubectl should be fetched from %s, verified, then run:\n%s\n%s", base, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "bin", "kubectl")); err != nil {
		t.Errorf("the fetched kubectl is kept in DIR/bin: %v", err)
	}

	// Unpinned, it is not fetched; the error says what to do instead.
	other := clusterDir(t)
	unpinned, _ := noKubeletLock(t)
	_, _, err = runKubectl(t, map[string]string{"DK8S_DIR": other, "DK8S_LOCK": unpinned, "DK8S_BINARY_MIRROR": base}, "get", "nodes")
	for _, want := range []string{"no kubectl in " + other + "/bin", "images.lock names no kubectl", "put a kubectl you trust there, or run yours with KUBECONFIG=" + other + "/admin.conf"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}

// runKubectl runs 'dk8s kubectl ARGS' with env set, and no engine.
func runKubectl(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	for _, k := range []string{"DK8S_LOCK", "DK8S_MIRROR", "DK8S_BINARY_MIRROR", "DK8S_DIR"} {
		t.Setenv(k, env[k])
	}
	var out, errb bytes.Buffer
	err = execute(context.Background(), Streams{Out: &out, Err: &errb}, append([]string{"kubectl"}, args...), nil)
	return out.String(), errb.String(), err
}
