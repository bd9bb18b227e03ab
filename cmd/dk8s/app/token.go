package app

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dk8s/dk8s/pkg/bootstrap"
	"github.com/dk8s/dk8s/pkg/token"
)

func newToken(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Make, list and delete the tokens workers join the cluster with",
		Long: `A worker joins the cluster with a bootstrap token, made on a control plane,
and the hash of the cluster CA, which together let it check that it reached
this cluster before it trusts it. Tokens are kubeadm's: Secrets in
kube-system that the apiserver accepts until they expire, and that the
controller-manager then deletes.

These commands run on a control plane, with the admin kubeconfig of its
cluster directory (--dir).`,
		Example: `  dk8s token create --print-join-command
  dk8s token list
  dk8s token delete abcdef`,
		// Runnable, so that cobra refuses an unknown subcommand instead
		// of printing the help and exiting 0.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newTokenCreate(g), newTokenList(g), newTokenDelete(g))
	return cmd
}

type tokenCreateFlags struct {
	clusterFlags
	ttl          time.Duration
	description  string
	printJoin    bool
	agentImage   string
	controlPlane bool
}

// defaultAgentImage is the image a worker runs the dk8s agent from: the
// build of this dk8s. It is dk8s's own version, not --kubernetes-version
// (g.version), which names the cluster's release and is not parsed yet
// when a flag's default is set.
func defaultAgentImage(g *globals) string {
	return "docker.io/dk8s/dk8s:" + Version
}

func newTokenCreate(g *globals) *cobra.Command {
	f := &tokenCreateFlags{}
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Make a token a worker joins with, and print it or the join command",
		Long: `Make a bootstrap token that lets a worker join the cluster until it expires
(--ttl), and print it alone on standard output.

On its first run it also publishes kube-public/cluster-info (the
apiserver's address and the cluster CA, which the controller-manager signs
with every token) and the RBAC rules a join needs. A joining host reads
cluster-info without trusting the server, checks the signature with its
token and the CA against --ca-cert-hash, and only then trusts the CA.

--print-join-command prints the command to run on the worker instead, in
both forms: 'dk8s join', and the Rancher-style agent, which keeps the
machine joined: 'dk8s agent image' makes the agent's image from the dk8s
binary there, with no registry, then 'docker run' starts it.

Anyone who holds the token can join a node until it expires: keep --ttl
short, and delete a token once it has served ('dk8s token delete').

--control-plane makes a token for another control plane (the first must
have been started with --ha): the cluster's CAs and service-account keys are
sealed in kube-system/dk8s-certs with a new certificate key, printed with
the join command and nowhere else, and removed when the token expires
(2 hours unless --ttl says otherwise). Whoever holds the token and the key
can become a control plane: treat them as the cluster's keys.`,
		Example: `  dk8s token create
  dk8s token create --ttl 2h --description "rack 4" --print-join-command
  ssh worker-1 "$(dk8s token create --print-join-command | head -1)"
  dk8s token create --control-plane --print-join-command`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runTokenCreate(cmd, g, f) },
	}
	f.add(cmd)
	fl := cmd.Flags()
	fl.DurationVar(&f.ttl, "ttl", 24*time.Hour, "how long the token lets hosts join, a `DURATION` such as 2h or 30m (0: it never expires)")
	fl.StringVar(&f.description, "description", "", "what the token is for, shown by 'dk8s token list'")
	fl.BoolVar(&f.printJoin, "print-join-command", false, "print the commands that join a worker, not the token alone")
	fl.StringVar(&f.agentImage, "agent-image", defaultAgentImage(g), "`IMAGE` of the dk8s agent in the printed docker run command")
	fl.BoolVar(&f.controlPlane, "control-plane", false, "a token for another control plane: also seal the cluster's CAs and keys in the cluster, under a certificate key printed with the join command (default --ttl 2h; the certificates go with the token)")
	return cmd
}

func runTokenCreate(cmd *cobra.Command, g *globals, f *tokenCreateFlags) error {
	if f.ttl < 0 {
		return fmt.Errorf("--ttl %s is negative: pass how long the token may be used, or 0 for a token that never expires", f.ttl)
	}
	ttl := f.ttl
	if f.controlPlane && !cmd.Flags().Changed("ttl") {
		ttl = 2 * time.Hour
	}
	if f.controlPlane && ttl == 0 {
		return errors.New("--ttl 0 with --control-plane would keep the cluster's sealed keys in the cluster for good: give the token a lifetime (the default is 2h)")
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	cs, err := g.kube(cfg)
	if err != nil {
		return err
	}

	jt, err := bootstrap.CreateJoinToken(cmd.Context(), cs, cfg, ttl, f.description)
	if err != nil {
		return fmt.Errorf("creating a join token: %w", err)
	}
	if f.controlPlane {
		key, err := bootstrap.UploadControlPlaneCerts(cmd.Context(), cs, cfg)
		if err != nil {
			token.Delete(cmd.Context(), cs, jt.ID) // a control-plane token without its certificates is of no use
			return err
		}
		if !f.printJoin {
			fmt.Fprintln(g.streams.Out, jt.String())
			fmt.Fprintln(g.streams.Out, key)
			return nil
		}
		fmt.Fprintln(g.streams.Err, "Run this on the new control plane (the token and the certificate key open the cluster's keys: keep them secret):")
		fmt.Fprintf(g.streams.Out, "dk8s join %s --token %s --ca-cert-hash %s --control-plane --certificate-key %s\n", jt.Server, jt.String(), jt.CAHash, key)
		return nil
	}
	if f.ttl == 0 {
		fmt.Fprintf(g.streams.Err, "warning: token %s never expires: anyone who holds it can join nodes until 'dk8s token delete %s'\n", jt.ID, jt.ID)
	}
	if !f.printJoin {
		fmt.Fprintln(g.streams.Out, jt.String())
		return nil
	}
	fmt.Fprintln(g.streams.Err, "Run one of these on the worker, which needs Docker and the dk8s binary: the first joins it, the second joins it and keeps it joined from a container (the agent).")
	for _, line := range joinCommands(jt, f.agentImage) {
		fmt.Fprintln(g.streams.Out, line)
	}
	return nil
}

// joinCommands are the two ways to join a worker with jt: dk8s's own
// command, and the agent's container, which reaches the host's Docker and
// PID namespace and keeps its state in /var/lib/dk8s as dk8s start does.
// The agent's line makes its image first, from the worker's dk8s binary,
// so it works as printed where no registry holds the image.
func joinCommands(jt bootstrap.JoinToken, image string) []string {
	return []string{
		fmt.Sprintf("dk8s join %s --token %s --ca-cert-hash %s", jt.Server, jt.String(), jt.CAHash),
		// The token in the agent's environment (root's alone to read), not
		// on its command line: it runs in the host's PID namespace, where
		// every user reads every process's.
		fmt.Sprintf("dk8s agent image %s >/dev/null && docker run -d --name %s --restart=always --net=host --pid=host -v /var/run/docker.sock:/var/run/docker.sock -v /var/lib/dk8s:/var/lib/dk8s -e DK8S_TOKEN=%s %s agent --server %s --ca-cert-hash %s",
			image, bootstrap.AgentContainer, jt.String(), image, jt.Server, jt.CAHash),
	}
}

type tokenListFlags struct {
	clusterFlags
	output string
}

func newTokenList(g *globals) *cobra.Command {
	f := &tokenListFlags{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the cluster's join tokens and when they expire",
		Long: `List the cluster's bootstrap tokens, dk8s's and any other's (kubeadm's),
soonest to expire first. An expired token shows <expired> until the
controller-manager deletes it.

The table shows each token whole (ID.SECRET), as kubeadm's does: whoever
reads it can join nodes.`,
		Example: `  dk8s token list
  dk8s token list -o json | jq -r '.[] | select(.expired) | .id'
  dk8s token delete $(dk8s token list -o name)   # every token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runTokenList(cmd, g, f) },
	}
	f.add(cmd)
	cmd.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table, json or name")
	return cmd
}

func runTokenList(cmd *cobra.Command, g *globals, f *tokenListFlags) error {
	if err := checkOutput(f.output, "table", "json", "name"); err != nil {
		return err
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	cs, err := g.kube(cfg)
	if err != nil {
		return err
	}
	toks, err := token.List(cmd.Context(), cs)
	if err != nil {
		return err
	}
	if f.output == "table" && len(toks) == 0 {
		fmt.Fprintln(g.streams.Err, "No tokens: make one with 'dk8s token create'.")
	}
	return printTokens(g.streams.Out, f.output, toks, time.Now())
}

// tokenView is a token as -o json shows it: with whether it has expired,
// so a script need not compare times.
type tokenView struct {
	token.Token
	Expired bool `json:"expired"`
}

// printTokens writes toks as output says, expiry judged at now.
func printTokens(w io.Writer, output string, toks []token.Token, now time.Time) error {
	switch output {
	case "name":
		for _, t := range toks {
			fmt.Fprintln(w, t.String())
		}
		return nil
	case "json":
		views := []tokenView{}
		for _, t := range toks {
			views = append(views, tokenView{Token: t, Expired: t.Expired(now)})
		}
		return writeJSON(w, views)
	}
	var rows [][]string
	for _, t := range toks {
		expires := "<never>"
		if !t.Expires.IsZero() {
			expires = t.Expires.UTC().Format(time.RFC3339)
		}
		rows = append(rows, []string{t.String(), ttl(t, now), expires, strings.Join(t.Usages, ","), orDash(t.Description)})
	}
	return table(w, []string{"TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION"}, rows)
}

// ttl is the time t has left, in its largest unit, as kubeadm shows it.
func ttl(t token.Token, now time.Time) string {
	if t.Expires.IsZero() {
		return "<forever>"
	}
	if t.Expired(now) {
		return "<expired>"
	}
	left := t.Expires.Sub(now)
	switch {
	case left < 2*time.Minute:
		return fmt.Sprintf("%ds", int(left.Seconds()))
	case left < 2*time.Hour:
		return fmt.Sprintf("%dm", int(left.Minutes()))
	case left < 48*time.Hour:
		return fmt.Sprintf("%dh", int(left.Hours()))
	}
	return fmt.Sprintf("%dd", int(left.Hours()/24))
}

func newTokenDelete(g *globals) *cobra.Command {
	f := &clusterFlags{}
	cmd := &cobra.Command{
		Use:   "delete ID...",
		Short: "Delete join tokens, so no new host can join with them",
		Long: `Delete tokens by ID, or whole (ID.SECRET): no host can join with them
any more. Nodes that already joined keep their own credentials. Every token
named is tried; the command fails if any could not be deleted.`,
		Example: `  dk8s token delete abcdef
  dk8s token delete abcdef.0123456789abcdef ghijkl`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			cs, err := g.kube(cfg)
			if err != nil {
				return err
			}
			var errs []error
			for _, arg := range args {
				if err := token.Delete(cmd.Context(), cs, arg); err != nil {
					errs = append(errs, err)
					continue
				}
				// The ID alone: a secret given on the command line is
				// not echoed.
				id, _, _ := strings.Cut(strings.TrimSpace(arg), ".")
				fmt.Fprintf(g.streams.Err, "deleted token %s\n", id)
			}
			return errors.Join(errs...)
		},
	}
	f.add(cmd)
	return cmd
}
