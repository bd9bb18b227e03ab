package app

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/dk8s/dk8s/pkg/bootstrap"
)

func newCerts(g *globals) *cobra.Command {
	f := &clusterFlags{}
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Show when each certificate of the cluster expires",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			exp, err := bootstrap.CertExpiries(cfg)
			if err != nil {
				return fmt.Errorf("reading the PKI in %s: %w (start the cluster first)", cfg.PKIDir(), err)
			}
			var rows [][]string
			for _, e := range exp {
				left := time.Until(e.NotAfter).Round(time.Hour)
				rows = append(rows, []string{e.Name, e.NotAfter.Format(time.RFC3339), fmt.Sprintf("%dd", int(left.Hours()/24)), yesNo(e.CA)})
			}
			return table(g.streams.Out, []string{"CERTIFICATE", "EXPIRES", "LEFT", "CA"}, rows)
		},
	}
	f.add(cmd)
	renew := &cobra.Command{
		Use:   "renew",
		Short: "Renew every certificate but the CAs, keeping keys; restart the control plane to load them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			// The names the cluster was made with, kept in its directory.
			if err := cfg.Resolve(); err != nil {
				return err
			}
			renewed, err := bootstrap.RenewCerts(cfg, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(g.streams.Err, "renewed %d certificates for another year; restart the components to load them: 'dk8s stop && dk8s start'\n", len(renewed))
			return nil
		},
	}
	f.add(renew)
	cmd.AddCommand(renew)
	return cmd
}
