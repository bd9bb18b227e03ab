package bootstrap

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

// The balancer sees only what it reads: its own directory and kubelet's
// certificates, never the cluster directory with the CA's key and
// super-admin.conf.
func TestBalancerBindsOnlyWhatItReads(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{ClusterName: "dk8s", Dir: dir}
	os.MkdirAll(filepath.Join(dir, "pki"), 0o700)
	os.WriteFile(filepath.Join(dir, "pki", "ca.crt"), []byte("the CA"), 0o644)
	spec, err := lbSpec(cfg, defaultRelease(t), []string{"192.0.2.10:6443"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range spec.Mounts {
		if m.Source == dir || m.Source == filepath.Join(dir, "pki") || !m.ReadOnly {
			t.Errorf("the balancer binds %+v", m)
		}
	}

	// A worker whose kubelet has not written kubelet.conf yet: the
	// balancer's names the certificate kubelet will write.
	kubeletConf := filepath.Join(dir, "kubelet.conf")
	if err := writeLBFiles(cfg, kubeletConf); err != nil {
		t.Fatal(err)
	}
	kc, err := clientcmd.LoadFromFile(filepath.Join(lbDir(cfg), "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	user := kc.AuthInfos[kc.Contexts[kc.CurrentContext].AuthInfo]
	if want := filepath.Join(dir, "kubelet", "pki", "kubelet-client-current.pem"); user.ClientCertificate != want || user.ClientKey != want {
		t.Errorf("the worker's balancer should use kubelet's rotated certificate %s: %+v", want, user)
	}
	if ca, _ := os.ReadFile(filepath.Join(lbDir(cfg), "ca.crt")); string(ca) != "the CA" {
		t.Errorf("the balancer's CA: %q", ca)
	}
	// Once there is a kubelet.conf (a control plane's, or the worker's
	// later), it is the node's identity, copied.
	os.WriteFile(kubeletConf, []byte("apiVersion: v1\nkind: Config\n# the node's\n"), 0o600)
	if err := writeLBFiles(cfg, kubeletConf); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(lbDir(cfg), "kubeconfig"))
	if !strings.Contains(string(got), "# the node's") {
		t.Errorf("the balancer's kubeconfig should be the node's kubelet.conf:\n%s", got)
	}
	if st, _ := os.Stat(filepath.Join(lbDir(cfg), "kubeconfig")); st.Mode().Perm() != 0o600 {
		t.Errorf("the balancer's kubeconfig is %v, want 0600", st.Mode().Perm())
	}
}
