package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// adminConf writes a cluster directory holding the admin kubeconfig that
// dk8s start writes, and returns the directory.
func adminConf(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["dk8s"] = &clientcmdapi.Cluster{Server: "https://192.0.2.10:6443", CertificateAuthorityData: []byte("ca")}
	cfg.AuthInfos["admin@dk8s"] = &clientcmdapi.AuthInfo{ClientCertificateData: []byte("crt"), ClientKeyData: []byte("key")}
	cfg.Contexts["admin@dk8s"] = &clientcmdapi.Context{Cluster: "dk8s", AuthInfo: "admin@dk8s"}
	cfg.CurrentContext = "admin@dk8s"
	if err := clientcmd.WriteToFile(*cfg, filepath.Join(dir, "admin.conf")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// usersConfig is a user's kubeconfig with a cluster of their own.
const usersConfig = `apiVersion: v1
kind: Config
clusters:
- name: other
  cluster: {server: 'https://192.0.2.99:6443'}
contexts:
- name: other
  context: {cluster: other, user: other}
users:
- name: other
  user: {token: x}
current-context: other
`

func assertMerged(t *testing.T, path string) {
	t.Helper()
	merged, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if merged.CurrentContext != "admin@dk8s" {
		t.Errorf("current context %q, want admin@dk8s", merged.CurrentContext)
	}
	if c := merged.Clusters["dk8s"]; c == nil || c.Server != "https://192.0.2.10:6443" || merged.AuthInfos["admin@dk8s"] == nil || merged.Contexts["admin@dk8s"] == nil {
		t.Errorf("dk8s's cluster, user and context should be merged: %+v", merged)
	}
}

func TestKubeconfigMergeKeepsOtherClusters(t *testing.T) {
	dir := adminConf(t)
	target := writeTemp(t, "config", usersConfig)
	t.Setenv("KUBECONFIG", target)

	stdout, stderr, err := run(t, nil, "kubeconfig", "--merge", "--dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := "merged " + filepath.Join(dir, "admin.conf") + " into " + target + "; current context is now dk8s's admin\n"; stderr != want || stdout != "" {
		t.Errorf("stderr %q, want %q; stdout %q", stderr, want, stdout)
	}
	assertMerged(t, target)
	merged, _ := clientcmd.LoadFromFile(target)
	if c := merged.Clusters["other"]; c == nil || c.Server != "https://192.0.2.99:6443" || merged.Contexts["other"] == nil || merged.AuthInfos["other"] == nil || merged.AuthInfos["other"].Token != "x" {
		t.Errorf("the user's own cluster, context and user should be kept: %+v", merged)
	}
	// The user's file was 0644; it now holds the admin's private key.
	if st, err := os.Stat(target); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("the merged kubeconfig holds a private key: want 0600, got %v (%v)", st.Mode().Perm(), err)
	}
}

func TestKubeconfigMergeMakesHomeConfig(t *testing.T) {
	dir := adminConf(t)
	// With no KUBECONFIG the target is ~/.kube/config, which client-go
	// computes once, from HOME at start-up (TestMain keeps it off the real
	// one): a directory of this test's own.
	home := filepath.Join(t.TempDir(), ".kube", "config")
	old := clientcmd.RecommendedHomeFile
	t.Cleanup(func() { clientcmd.RecommendedHomeFile = old })
	clientcmd.RecommendedHomeFile = home
	t.Setenv("KUBECONFIG", "")

	if _, stderr, err := run(t, nil, "kubeconfig", "--merge", "--dir", dir); err != nil || !strings.Contains(stderr, "into "+home+";") {
		t.Fatalf("merge into a missing ~/.kube/config: %v, %q", err, stderr)
	}
	assertMerged(t, home)
	if st, err := os.Stat(home); err != nil {
		t.Error(err)
	} else if st.Mode().Perm() != 0o600 {
		t.Errorf("the new kubeconfig holds a private key: it is %v, want 0600", st.Mode().Perm())
	}
}

func TestKubeconfigPrintsAdminConfig(t *testing.T) {
	dir := adminConf(t)
	stdout, _, err := run(t, nil, "kubeconfig", "--dir", dir)
	want, _ := os.ReadFile(filepath.Join(dir, "admin.conf"))
	if err != nil || stdout != string(want) {
		t.Errorf("kubeconfig should print admin.conf as it is: %v\n%s", err, stdout)
	}

	empty := t.TempDir()
	_, _, err = run(t, nil, "kubeconfig", "--merge", "--dir", empty)
	if want := filepath.Join(empty, "admin.conf") + " does not exist: start the cluster first ('dk8s start')"; err == nil || err.Error() != want {
		t.Errorf("kubeconfig of a cluster never started: error %v, want %q", err, want)
	}
}
