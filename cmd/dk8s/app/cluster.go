package app

import (
	"github.com/spf13/cobra"

	"github.com/dk8s/dk8s/pkg/bootstrap"
)

// clusterFlags name the cluster every cluster command works on.
type clusterFlags struct {
	dir  string
	name string
}

func (c *clusterFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.dir, "dir", bootstrap.DefaultDir, "host `DIR` that holds the cluster's PKI, kubeconfigs and etcd data")
	cmd.Flags().StringVar(&c.name, "name", "dk8s", "cluster `NAME`, put on every container as a label")
}

// connect returns the cluster's configuration and a connected engine.
func (c *clusterFlags) connect(cmd *cobra.Command, g *globals) (bootstrap.Config, engine, error) {
	cfg, err := c.config()
	if err != nil {
		return cfg, nil, err
	}
	engine, err := g.engine(cmd.Context())
	return cfg, engine, err
}

// config is the cluster the flags name. It looks nothing up on the host:
// commands that need the node name or the address resolve them
// (bootstrap.Config.Resolve), so a host without a default route can still
// run ps, stop and reset.
func (c *clusterFlags) config() (bootstrap.Config, error) {
	cfg := bootstrap.DefaultConfig()
	dir, err := bootstrap.AbsDir(c.dir)
	if err != nil {
		return cfg, err
	}
	cfg.Dir, cfg.ClusterName = dir, c.name
	return cfg, nil
}
