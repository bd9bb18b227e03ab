package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func newKubeconfig(g *globals) *cobra.Command {
	f := &clusterFlags{}
	var merge bool
	cmd := &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print the cluster admin's kubeconfig, or merge it into ~/.kube/config",
		Long: `Print the cluster admin's kubeconfig (it holds a private key: keep it 0600).
With --merge, add its cluster, user and context to your kubeconfig
($KUBECONFIG's first file, else ~/.kube/config) and make it the current
context; entries of other clusters are kept.`,
		Example: "  dk8s kubeconfig --merge && kubectl get namespaces\n  KUBECONFIG=/var/lib/dk8s/admin.conf kubectl get namespaces",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			path := cfg.AdminKubeconfig()
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%s does not exist: start the cluster first ('dk8s start')", path)
			}
			if !merge {
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				_, err = g.streams.Out.Write(data)
				return err
			}
			target, err := mergeKubeconfig(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.streams.Err, "merged %s into %s; current context is now %s's admin\n", path, target, cfg.ClusterName)
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&merge, "merge", false, "merge into your kubeconfig instead of printing")
	return cmd
}

// mergeKubeconfig adds admin's entries to the user's kubeconfig and makes
// its context current, keeping every other entry.
func mergeKubeconfig(admin string) (string, error) {
	src, err := clientcmd.LoadFromFile(admin)
	if err != nil {
		return "", err
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	target := rules.GetDefaultFilename()
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
	if err := clientcmd.WriteToFile(*dst, target); err != nil {
		return "", err
	}
	// It now holds the admin's private key: readable by its owner only,
	// whatever mode the file had.
	return target, os.Chmod(target, 0o600)
}
