package bootstrap

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// isolateKubeconfig keeps the test off the user's kubeconfig, even with
// MergeKubeconfig broken: client-go took ~/.kube/config from HOME at
// start-up, so it is pointed into a directory of the test's own, and
// KUBECONFIG is unset.
func isolateKubeconfig(t *testing.T) (home string) {
	t.Helper()
	home = filepath.Join(t.TempDir(), ".kube", "config")
	old := clientcmd.RecommendedHomeFile
	t.Cleanup(func() { clientcmd.RecommendedHomeFile = old })
	clientcmd.RecommendedHomeFile = home
	t.Setenv("KUBECONFIG", "")
	return home
}

// adminConf writes the admin kubeconfig that dk8s start writes, and
// returns its path.
func adminConf(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin.conf")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["dk8s"] = &clientcmdapi.Cluster{Server: "https://192.0.2.10:6443", CertificateAuthorityData: []byte("ca")}
	cfg.AuthInfos["admin@dk8s"] = &clientcmdapi.AuthInfo{ClientCertificateData: []byte("crt"), ClientKeyData: []byte("key")}
	cfg.Contexts["admin@dk8s"] = &clientcmdapi.Context{Cluster: "dk8s", AuthInfo: "admin@dk8s"}
	cfg.CurrentContext = "admin@dk8s"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
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

func TestMergeKubeconfigKeepsOtherClusters(t *testing.T) {
	isolateKubeconfig(t)
	admin := adminConf(t)
	target := writeTemp(t, "config", usersConfig)
	t.Setenv("KUBECONFIG", target)

	got, err := MergeKubeconfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	if got != target {
		t.Errorf("merged into %s, want $KUBECONFIG, %s", got, target)
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

func TestMergeKubeconfigMakesHomeConfig(t *testing.T) {
	// With no KUBECONFIG the target is ~/.kube/config: a directory of this
	// test's own.
	home := isolateKubeconfig(t)
	if got, err := MergeKubeconfig(adminConf(t)); err != nil || got != home {
		t.Fatalf("merge into a missing ~/.kube/config: %v, wrote %s, want %s", err, got, home)
	}
	assertMerged(t, home)
	if st, err := os.Stat(home); err != nil {
		t.Error(err)
	} else if st.Mode().Perm() != 0o600 {
		t.Errorf("the new kubeconfig holds a private key: it is %v, want 0600", st.Mode().Perm())
	}
}

func TestAdminKubeconfigOfAClusterNeverStarted(t *testing.T) {
	home := isolateKubeconfig(t)
	missing := filepath.Join(t.TempDir(), "admin.conf")
	want := missing + " does not exist: start the cluster first ('dk8s start')"
	if _, err := MergeKubeconfig(missing); err == nil || err.Error() != want {
		t.Errorf("MergeKubeconfig: error %v, want %q", err, want)
	}
	if _, err := os.Stat(home); !os.IsNotExist(err) {
		t.Errorf("a refused merge wrote %s: %v", home, err)
	}
	if _, err := ReadAdminKubeconfig(missing); err == nil || err.Error() != want {
		t.Errorf("ReadAdminKubeconfig: error %v, want %q", err, want)
	}
}
