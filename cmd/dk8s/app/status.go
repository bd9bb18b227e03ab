package app

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/dk8s/dk8s/pkg/bootstrap"
	"github.com/dk8s/dk8s/pkg/containers"
)

type psFlags struct {
	clusterFlags
	output string
}

func newPs(g *globals) *cobra.Command {
	f := &psFlags{}
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "Show every component: state, health, restarts, version, uptime",
		Long: `Show every component on this host with its live health: the control plane's
and the node's on a control plane (then also the cluster's nodes), the
node's on a worker. SUPERVISOR says what keeps each running: docker (the
container NAME, restarted always) or, for the node's containerd and kubelet
where systemd is init, systemd (the unit NAME; its logs are in the journal).
Exits non-zero when any component is absent or unhealthy, so monitoring can
run it.`,
		Example: "  dk8s ps\n  dk8s ps -o json | jq '.[] | select(.healthy | not)'",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runPs(cmd, g, f) },
	}
	f.add(cmd)
	cmd.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

func runPs(cmd *cobra.Command, g *globals, f *psFlags) error {
	if err := checkOutput(f.output, "table", "json", "yaml"); err != nil {
		return err
	}
	cfg, engine, err := f.connect(cmd, g)
	if err != nil {
		return err
	}
	defer engine.Close()
	sts, err := bootstrap.Status(cmd.Context(), engine, cfg)
	if err != nil {
		return err
	}
	if err := printStatus(g.streams.Out, f.output, sts); err != nil {
		return err
	}
	// A control plane also shows the cluster's nodes, in the table (the
	// JSON and YAML stay the component list that monitoring reads).
	if f.output == "table" && hasComponent(sts, "kube-apiserver") {
		if cs, err := g.kube(cfg); err == nil {
			if nodes, err := bootstrap.Nodes(cmd.Context(), cs); err == nil && len(nodes) > 0 {
				fmt.Fprintln(g.streams.Out)
				var rows [][]string
				for _, n := range nodes {
					status := "NotReady"
					if n.Ready {
						status = "Ready"
					}
					rows = append(rows, []string{n.Name, status, n.Roles, orDash(n.Version), orDash(n.Address)})
				}
				if err := table(g.streams.Out, []string{"NODE", "STATUS", "ROLES", "VERSION", "ADDRESS"}, rows); err != nil {
					return err
				}
			}
		}
	}
	for _, s := range sts {
		if !s.Healthy {
			return ExitError{Code: 1}
		}
	}
	return nil
}

// printStatus writes ps's rows as output says: json, yaml, or a table
// that shows "unhealthy" for a running component, its probe's error
// being in -o json.
func printStatus(w io.Writer, output string, sts []bootstrap.ComponentStatus) error {
	switch output {
	case "json":
		return writeJSON(w, sts)
	case "yaml":
		return yaml.NewEncoder(w).Encode(sts)
	}
	var rows [][]string
	for _, s := range sts {
		uptime := "-"
		if s.Uptime > 0 {
			uptime = s.Uptime.String()
		}
		health := s.Health
		if !s.Healthy && s.State == "running" {
			health = "unhealthy"
		}
		name := s.Container
		if s.Unit != "" {
			name = s.Unit
		}
		rows = append(rows, []string{s.Component, s.Supervisor, name, s.State, health, fmt.Sprint(s.Restarts), orDash(s.Version), uptime, s.Endpoint})
	}
	return table(w, []string{"COMPONENT", "SUPERVISOR", "NAME", "STATE", "HEALTH", "RESTARTS", "VERSION", "UPTIME", "ENDPOINT"}, rows)
}

func hasComponent(sts []bootstrap.ComponentStatus, name string) bool {
	for _, s := range sts {
		if s.Component == name && s.Healthy {
			return true
		}
	}
	return false
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// logsFlags are logs's. It takes no --dir or --name: a component's
// container is this host's dk8s-COMPONENT, of the one cluster the host runs
// (start and reset refuse a second --dir while one runs), so there is no
// other to choose. Refusing a container of another --dir, as stop does,
// would turn the hints dk8s prints after a failed start ('dk8s logs
// kube-apiserver') into refusals for a cluster kept outside the default
// directory, just when its logs are wanted.
type logsFlags struct {
	follow bool
	tail   string
}

func newLogs(g *globals) *cobra.Command {
	f := &logsFlags{}
	cmd := &cobra.Command{
		Use:   "logs COMPONENT",
		Short: "Print a component's logs",
		Long: `Print the logs of COMPONENT's container on this host (dk8s-etcd, ...), of
whichever cluster directory it runs for. Where systemd runs the node's
containerd and kubelet (dk8s ps says so), theirs come from the journal, as
'journalctl -u dk8s-kubelet.service' shows them.`,
		Example:   "  dk8s logs kube-apiserver --tail 50\n  dk8s logs etcd -f",
		Args:      cobra.ExactArgs(1),
		ValidArgs: bootstrap.ComponentNames(),
		RunE: func(cmd *cobra.Command, args []string) error {
			engine, err := g.engine(cmd.Context())
			if err != nil {
				return err
			}
			defer engine.Close()
			return bootstrap.Logs(cmd.Context(), engine, args[0], containers.LogsOptions{Follow: f.follow, Tail: f.tail}, g.streams.Out, g.streams.Out)
		},
	}
	cmd.Flags().BoolVarP(&f.follow, "follow", "f", false, "keep printing new lines")
	cmd.Flags().StringVar(&f.tail, "tail", "all", "lines from the end to show")
	return cmd
}
