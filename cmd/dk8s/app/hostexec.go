package app

import (
	"github.com/spf13/cobra"

	"github.com/dk8s/dk8s/pkg/bootstrap"
)

func newHostExec() *cobra.Command {
	opts := bootstrap.HostExecOptions{}
	cmd := &cobra.Command{
		Use:    "host-exec [--service-cidr RANGE] [--cgroup NAME] -- COMMAND [ARG...]",
		Short:  "Enter the host's root at /host and run COMMAND there (run by dk8s's node containers)",
		Hidden: true,
		Args:   cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return bootstrap.ExecOnHost(opts, args)
		},
	}
	cmd.Flags().StringVar(&opts.Root, "root", bootstrap.HostRoot, "the host's root file system")
	cmd.Flags().StringVar(&opts.ServiceCIDR, "service-cidr", "", "route this range to the host's service device first")
	cmd.Flags().StringVar(&opts.Cgroup, "cgroup", "", "move into this cgroup first")
	return cmd
}
