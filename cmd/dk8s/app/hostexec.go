package app

import (
	"github.com/spf13/cobra"

	"github.com/dk8s/dk8s/pkg/host"
)

func newHostExec() *cobra.Command {
	opts := host.ExecOptions{}
	cmd := &cobra.Command{
		Use:    "host-exec [--service-cidr RANGE] [--cgroup NAME] -- COMMAND [ARG...]",
		Short:  "Enter the host's root at /host and run COMMAND there (run by dk8s's node containers)",
		Hidden: true,
		Args:   cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return host.ExecOnHost(cmd.Context(), host.Exec{}, opts, args)
		},
	}
	cmd.Flags().StringVar(&opts.Root, "root", host.MountedRoot, "the host's root file system")
	cmd.Flags().StringVar(&opts.ServiceCIDR, "service-cidr", "", "route this range to the host's service device first")
	cmd.Flags().StringVar(&opts.Cgroup, "cgroup", "", "move into this cgroup first")
	return cmd
}
