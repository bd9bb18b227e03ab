package app

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dk8s/dk8s/pkg/bootstrap"
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
			if !merge {
				data, err := bootstrap.ReadAdminKubeconfig(path)
				if err != nil {
					return err
				}
				_, err = g.streams.Out.Write(data)
				return err
			}
			target, err := bootstrap.MergeKubeconfig(path)
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
