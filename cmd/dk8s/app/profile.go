package app

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dk8s/dk8s/pkg/bootstrap"
)

// addProfileFlag adds --profile, which start and join share.
func addProfileFlag(fl *pflag.FlagSet, p *string) {
	fl.StringVar(p, "profile", "",
		"`PROFILE` of this node: default, or small for machines of 1 to 2 GB, where every Go program dk8s runs here collects garbage "+
			"at GOGC=25: less idle memory for more CPU (the add-ons follow the first control plane's); kept for later runs (default: the cluster's, else default)")
}

// profileOf is --profile when it was given, else "" (the cluster's own,
// from its marker, or the default for a new one).
func profileOf(cmd *cobra.Command, p string) (bootstrap.Profile, error) {
	if !cmd.Flags().Changed("profile") {
		return "", nil
	}
	return bootstrap.ParseProfile(p)
}
