package bootstrap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ReadAdminKubeconfig returns the admin kubeconfig at path (a cluster's
// Config.AdminKubeconfig), or an error saying to start the cluster when
// there is none.
func ReadAdminKubeconfig(path string) ([]byte, error) {
	if err := adminKubeconfigExists(path); err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}

// MergeKubeconfig adds the cluster, user and context of the admin
// kubeconfig at adminPath to the user's kubeconfig ($KUBECONFIG's first
// file, else ~/.kube/config, made if missing) and makes its context
// current, keeping every other entry. It returns the file it wrote, which
// it leaves 0600.
func MergeKubeconfig(adminPath string) (target string, err error) {
	if err := adminKubeconfigExists(adminPath); err != nil {
		return "", err
	}
	src, err := clientcmd.LoadFromFile(adminPath)
	if err != nil {
		return "", err
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	target = rules.GetDefaultFilename()
	dst, err := clientcmd.LoadFromFile(target)
	if errors.Is(err, os.ErrNotExist) {
		dst, err = clientcmdapi.NewConfig(), nil
	}
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", target, err)
	}
	for k, v := range src.Clusters {
		dst.Clusters[k] = v
	}
	for k, v := range src.AuthInfos {
		dst.AuthInfos[k] = v
	}
	for k, v := range src.Contexts {
		dst.Contexts[k] = v
	}
	dst.CurrentContext = src.CurrentContext
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return "", err
	}
	// It is about to hold the admin's private key: readable by its owner
	// only, whatever mode the file had, before the key is written.
	if err := os.Chmod(target, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if err := clientcmd.WriteToFile(*dst, target); err != nil {
		return "", err
	}
	return target, os.Chmod(target, 0o600)
}

func adminKubeconfigExists(path string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s does not exist: start the cluster first ('dk8s start')", path)
	}
	return nil
}
