package app

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/dk8s/dk8s/pkg/bootstrap"
)

func newCSRApprover(g *globals) *cobra.Command {
	var kubeconfig, health string
	cmd := &cobra.Command{
		Use:    "csr-approver --kubeconfig FILE",
		Short:  "Approve kubelets' serving-certificate requests that name only their node's addresses (run by dk8s start)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return err
			}
			rc.Timeout = 15 * time.Second
			cs, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return err
			}
			return bootstrap.RunApprover(cmd.Context(), cs, health, func(msg string) {
				fmt.Fprintf(g.streams.Err, "%s %s\n", time.Now().UTC().Format(time.RFC3339), msg)
			})
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "the approver's kubeconfig `FILE`")
	cmd.Flags().StringVar(&health, "health-address", "127.0.0.1:10270", "`HOST:PORT` of its /healthz")
	return cmd
}
