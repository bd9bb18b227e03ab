package app

import (
	"bufio"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dk8s/dk8s/pkg/bootstrap"
)

func newStop(g *globals) *cobra.Command {
	f := &clusterFlags{}
	cmd := &cobra.Command{
		Use:   "stop",
		Short: "Stop the cluster (kubelet and runtime first), keeping its containers, data and PKI",
		Long: `Stop the node's agents and the control plane's containers, newest first.
Everything is kept: 'dk8s start' brings them back. Pods keep running (they
outlive the runtime, as under systemd); start adopts them, reset stops them.
As with any restart=always container, a restart of the Docker daemon starts
the stopped containers again too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, engine, err := f.connect(cmd, g)
			if err != nil {
				return err
			}
			defer engine.Close()
			stopped, err := bootstrap.Stop(cmd.Context(), engine, cfg)
			for _, n := range stopped {
				fmt.Fprintln(g.streams.Err, "stopped", n)
			}
			return err
		},
	}
	f.add(cmd)
	return cmd
}

type resetFlags struct {
	clusterFlags
	purge, yes, drain, force bool
}

func newReset(g *globals) *cobra.Command {
	f := &resetFlags{}
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Remove the cluster's containers and pods; keep etcd data and PKI unless --purge",
		Long: `Stop the pods (starting the runtime if 'dk8s stop' stopped it) and remove
the cluster's containers and the node's units. The cluster directory (etcd's
data, the PKI, the kubeconfigs) stays, so 'dk8s start' brings the same
cluster back. --purge also deletes that directory, and with it every object
the cluster held, and the node's network and runtime state: it asks first,
or takes --yes. Only a directory dk8s marked for this cluster
(dk8s-cluster.yaml) is reset or purged.

On a worker, reset takes the machine out of the cluster: with --drain it is
cordoned and its pods (but its DaemonSets') are deleted first, so their
controllers place them elsewhere at once. Its Node object stays, NotReady:
nodes may not delete Node objects, so remove it on a control plane with
'dk8s kubectl delete node NAME' (reset says so). A reset refuses while the node agent runs (it would join the
machine again): remove it first with 'docker rm -f dk8s-agent'.

On one of several control planes, reset first takes its etcd member out of
the cluster's, and refuses when the members left would not make a quorum
(--force resets anyway).`,
		Example: "  dk8s reset\n  dk8s reset --purge --yes\n  dk8s reset --drain --purge --yes   # a worker, leaving for good",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runReset(cmd, g, f) },
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&f.purge, "purge", false, "also delete the cluster directory: etcd data, PKI, kubeconfigs")
	cmd.Flags().BoolVarP(&f.yes, "yes", "y", false, "do not ask before --purge")
	cmd.Flags().BoolVar(&f.drain, "drain", false, "on a worker: delete its pods first and wait until they are gone")
	cmd.Flags().BoolVar(&f.force, "force", false, "on one of several control planes: reset even if the others would be left without an etcd quorum")
	return cmd
}

func runReset(cmd *cobra.Command, g *globals, f *resetFlags) error {
	cfg, err := f.config()
	if err != nil {
		return err
	}
	if f.purge {
		// Refused before anything is asked or removed.
		if err := bootstrap.CheckPurge(cfg); err != nil {
			return err
		}
	}
	if f.purge && !f.yes {
		ok, err := confirm(g, fmt.Sprintf("This deletes %s: the cluster's etcd data (every object), its PKI and kubeconfigs. Type 'yes' to go on: ", cfg.Dir))
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("not purged: nothing was changed")
		}
	}
	engine, err := g.engine(cmd.Context())
	if err != nil {
		return err
	}
	defer engine.Close()
	removed, err := bootstrap.Reset(cmd.Context(), engine, cfg, bootstrap.ResetOptions{Purge: f.purge, Drain: f.drain, Force: f.force,
		Notes: func(note string) { fmt.Fprintln(g.streams.Err, "note:", note) }})
	for _, n := range removed {
		fmt.Fprintln(g.streams.Err, "removed", n)
	}
	if err == nil && f.purge {
		fmt.Fprintln(g.streams.Err, "purged", cfg.Dir)
	} else if err == nil {
		fmt.Fprintf(g.streams.Err, "kept %s (etcd data, PKI, kubeconfigs): 'dk8s start' brings the cluster back\n", cfg.Dir)
	}
	return err
}

func confirm(g *globals, prompt string) (bool, error) {
	if g.streams.In == nil {
		return false, errors.New("--purge asks for confirmation: pass --yes to run without a terminal")
	}
	fmt.Fprint(g.streams.Err, prompt)
	line, err := bufio.NewReader(g.streams.In).ReadString('\n')
	if err != nil && line == "" {
		return false, errors.New("--purge needs a 'yes' on standard input, or --yes")
	}
	return strings.TrimSpace(line) == "yes", nil
}
