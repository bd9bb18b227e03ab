package app

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/dk8s/dk8s/pkg/bootstrap"
)

func newAgent(g *globals) *cobra.Command {
	f := &joinFlags{}
	var server string
	var check, converge time.Duration
	cmd := &cobra.Command{
		Use:   "agent --server https://HOST:6443 --token TOKEN --ca-cert-hash sha256:HASH",
		Short: "Join this machine and keep it joined (run as a container, Rancher-style)",
		Long: `The node agent: 'dk8s join' as a container that stays. Run on a new machine as

  docker run -d --name dk8s-agent --restart=always --net=host --pid=host \
    -v /var/run/docker.sock:/var/run/docker.sock -v /var/lib/dk8s:/var/lib/dk8s \
    -e DK8S_TOKEN=TOKEN IMAGE agent --server https://HOST:6443 --ca-cert-hash sha256:HASH

('dk8s token create --print-join-command' on a control plane prints it,
after 'dk8s agent image', which makes IMAGE from the dk8s binary). The
token goes in the environment, readable by root alone, not on the agent's
command line, which every user of the host can read (it runs in the host's
PID namespace). It
joins the machine, then watches the node's runtime and kubelet containers:
one removed or stopped by hand is put back, and every --converge a whole
join runs again, so a changed setting (start the agent again with it) is
applied. Each join runs on the host in a one-shot container (dk8s-join) that
enters the host's mount namespace, as the node's own agents do; the agent itself needs
Docker's socket and nothing else. Stop it with 'docker rm -f dk8s-agent'
before 'dk8s reset'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if server == "" {
				return fmt.Errorf("--server is required: the control plane's apiserver, https://HOST:6443")
			}
			jc, _, err := f.joinConfig(cmd, server)
			if err != nil {
				return err
			}
			args := []string{server, "--dir", jc.Dir, "--timeout", f.timeout.String(), "--discovery-timeout", f.discovery.String()}
			for _, h := range f.hashes {
				args = append(args, "--ca-cert-hash", h)
			}
			if f.maxPods > 0 {
				args = append(args, "--max-pods", fmt.Sprint(f.maxPods))
			}
			for flag, v := range map[string]string{"--node-name": f.nodeName, "--advertise-address": f.advertise, "--kubelet-binary": f.kubeletBinary, "--lock": g.lock, "--kubernetes-version": g.version} {
				if v != "" {
					args = append(args, flag, v)
				}
			}
			if cmd.Flags().Changed("mirror") || len(jc.Mirrors) > 0 {
				args = append(args, "--mirror", f.mirrors)
			}
			if f.binaryMirrors != "" {
				args = append(args, "--binary-mirror", f.binaryMirrors)
			}
			if jc.Profile != "" {
				args = append(args, "--profile", string(jc.Profile))
			}
			engine, err := g.engine(cmd.Context())
			if err != nil {
				return err
			}
			defer engine.Close()
			fmt.Fprintf(g.streams.Err, "dk8s agent: keeping this machine a node of %s\n", server)
			return bootstrap.RunAgent(cmd.Context(), engine, bootstrap.AgentConfig{
				Dir: jc.Dir, JoinArgs: args, Env: []string{"DK8S_TOKEN=" + f.token},
				Check: check, Converge: converge, Out: g.streams.Err,
			})
		},
	}
	f.addJoin(cmd)
	fl := cmd.Flags()
	fl.StringVar(&server, "server", "", "the control plane's apiserver, `https://HOST:6443`")
	fl.DurationVar(&check, "check", 5*time.Second, "how often the node's agents are looked at")
	fl.DurationVar(&converge, "converge", 5*time.Minute, "how often a whole join runs anyway")
	cmd.AddCommand(newAgentImage(g))
	return cmd
}

func newAgentImage(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "image [IMAGE]",
		Short: "Make the node agent's image from this dk8s binary, in the local Docker",
		Long: `Make the node agent's image (default ` + defaultAgentImage(g) + `) in this
machine's Docker from the dk8s binary that runs the command: the binary
alone, at ` + bootstrap.AgentBinary + `, with nothing beneath it (dk8s is
static), so nothing is pulled and no registry is needed. The join command
'dk8s token create --print-join-command' prints runs it before the agent's
docker run. Making it again replaces the name; the image of a running agent
stays until the agent is removed.`,
		Example: `  dk8s agent image
  dk8s agent image registry.example.com/ops/dk8s:v1 && docker push registry.example.com/ops/dk8s:v1`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref := defaultAgentImage(g)
			if len(args) == 1 {
				ref = args[0]
			}
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding this dk8s binary: %w", err)
			}
			engine, err := g.engine(cmd.Context())
			if err != nil {
				return err
			}
			defer engine.Close()
			if err := bootstrap.AgentImage(cmd.Context(), engine, self, ref); err != nil {
				return err
			}
			fmt.Fprintf(g.streams.Err, "made %s from %s\n", ref, self)
			fmt.Fprintln(g.streams.Out, ref)
			return nil
		},
	}
}
