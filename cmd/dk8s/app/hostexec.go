package app

import (
	"github.com/spf13/cobra"

	"github.com/dk8s/dk8s/pkg/host"
)

func newHostExec() *cobra.Command {
	opts := host.ExecOptions{}
	var root string
	cmd := &cobra.Command{
		Use:    "host-exec [--service-cidr RANGE] [--cgroup NAME] [--path-first DIR] -- COMMAND [ARG...]",
		Short:  "Enter the host's mount namespace and run COMMAND there (run by dk8s's node containers)",
		Hidden: true,
		Args:   cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// "--root /" is what systemd's units say: already on the host.
			opts.EnterHost = root != "/"
			return host.ExecOnHost(cmd.Context(), host.Exec{}, opts, args)
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "/ when already in the host's mount namespace (a systemd unit)")
	cmd.Flags().StringVar(&opts.ServiceCIDR, "service-cidr", "", "route this range to the host's service device first")
	cmd.Flags().StringVar(&opts.Cgroup, "cgroup", "", "move into this cgroup first")
	cmd.Flags().StringVar(&opts.PathFirst, "path-first", "", "put this directory first on COMMAND's PATH")
	return cmd
}
