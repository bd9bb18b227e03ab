package app

import (
	"os"
	"path/filepath"
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

// The merge itself is tested in pkg/bootstrap; this is what the command
// says of it.
func TestKubeconfigMerge(t *testing.T) {
	dir := adminConf(t)
	target := filepath.Join(t.TempDir(), "config")
	t.Setenv("KUBECONFIG", target)

	stdout, stderr, err := run(t, nil, "kubeconfig", "--merge", "--dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := "merged " + filepath.Join(dir, "admin.conf") + " into " + target + "; current context is now dk8s's admin\n"; stderr != want || stdout != "" {
		t.Errorf("stderr %q, want %q; stdout %q", stderr, want, stdout)
	}
	if merged, err := clientcmd.LoadFromFile(target); err != nil || merged.CurrentContext != "admin@dk8s" {
		t.Errorf("kubeconfig --merge should make dk8s's admin the current context of %s: %v", target, err)
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
	for _, args := range [][]string{{"kubeconfig", "--dir", empty}, {"kubeconfig", "--merge", "--dir", empty}} {
		_, _, err = run(t, nil, args...)
		if want := filepath.Join(empty, "admin.conf") + " does not exist: start the cluster first ('dk8s start')"; err == nil || err.Error() != want {
			t.Errorf("%v of a cluster never started: error %v, want %q", args, err, want)
		}
	}
}
