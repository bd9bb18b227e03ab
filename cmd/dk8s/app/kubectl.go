package app

import (
	"github.com/spf13/cobra"

	"github.com/dk8s/dk8s/pkg/bootstrap"
	"github.com/dk8s/dk8s/pkg/host"
	"github.com/dk8s/dk8s/pkg/mirror"
)

func newKubectl(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "kubectl [ARGS...]",
		Short: "Run the cluster's kubectl as its admin: dk8s kubectl get nodes",
		Long: `Run kubectl against this host's cluster as its admin, as 'k3s kubectl' and
'k0s kubectl' do: every argument goes to kubectl untouched (so
'dk8s kubectl --help' is kubectl's help), with KUBECONFIG set to the
cluster's admin.conf, and kubectl's exit code is dk8s's.

The kubectl is DIR/bin/kubectl, brought by 'dk8s pull' or, when missing,
fetched through the binary mirrors and checked against the sha256 images.lock
pins for the release the cluster runs. Since every flag is kubectl's, dk8s's
own settings come from the environment:

  DK8S_DIR             the cluster directory (default /var/lib/dk8s)
  DK8S_BINARY_MIRROR   binary mirrors, as --binary-mirror (see 'dk8s pull --help');
                       else those DK8S_MIRROR implies, else upstream
  DK8S_LOCK            the image lock, as --lock`,
		Example: `  dk8s kubectl get nodes -o wide
  dk8s kubectl -n kube-system logs ds/kube-proxy
  DK8S_DIR=/data/dk8s dk8s kubectl get pods -A`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := bootstrap.AbsDir(envOr("DK8S_DIR", bootstrap.DefaultDir))
			if err != nil {
				return err
			}
			choice, err := mirror.ParseChoice(envOr("DK8S_MIRROR", "upstream"))
			if err != nil {
				return err
			}
			bins, err := binaryMirrors(envOr("DK8S_BINARY_MIRROR", ""), choice.Mirrors)
			if err != nil {
				return err
			}
			lock, err := g.readLock()
			if err != nil {
				return err
			}
			code, err := bootstrap.Kubectl(cmd.Context(), bootstrap.KubectlOptions{
				Dir: dir, Lock: lock, Args: args,
				Fetcher: &host.Fetcher{Mirrors: bins, Events: newBinaryView(g.streams.Err).event},
				Stdin:   g.streams.In, Stdout: g.streams.Out, Stderr: g.streams.Err,
			})
			if err != nil {
				return err
			}
			if code != 0 {
				return ExitError{Code: code}
			}
			return nil
		},
	}
}
