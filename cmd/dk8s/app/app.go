// Package app is the dk8s command line: thin cobra commands that turn flags
// into one call of dk8s's pkg/ libraries and render what comes back.
package app

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/dk8s/dk8s"
	"github.com/dk8s/dk8s/pkg/bootstrap"
	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/images"
)

// Version is dk8s's own version, stamped at build time.
var Version = "dev"

// Streams are the command's standard streams: program output (tables,
// JSON) goes to Out, messages and progress to Err, so output pipes cleanly.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// ExitError ends the program with Code once its message has been printed.
type ExitError struct{ Code int }

func (e ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// globals are the flags every command takes, and what every command
// reaches the world through.
type globals struct {
	lock      string
	version   string
	streams   Streams
	newEngine engineFunc
	newKube   kubeFunc
}

// engine is the container engine a command drives, and the connection to
// it that the command closes when it is done.
type engine interface {
	containers.Engine
	Close() error
}

// engineFunc connects to the container engine. Commands connect only once
// their flags are checked, so a refused command never reaches the daemon.
type engineFunc func(ctx context.Context) (engine, error)

// kubeFunc connects to the apiserver of a cluster as its admin: with the
// cluster directory's admin kubeconfig (bootstrap.AdminClient), or a fake
// clientset in unit tests.
type kubeFunc func(cfg bootstrap.Config) (kubernetes.Interface, error)

// dockerFromEnv connects to the Docker daemon the environment names
// (DOCKER_HOST, ...).
func dockerFromEnv(ctx context.Context) (engine, error) {
	d, err := containers.FromEnv(ctx)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// Run runs dk8s with args (without the program name) against the Docker
// daemon of the environment.
func Run(ctx context.Context, streams Streams, args []string) error {
	return execute(ctx, streams, args, dockerFromEnv)
}

// execute runs dk8s with the engine newEngine connects to: Docker for Run,
// an in-memory fake in unit tests.
func execute(ctx context.Context, streams Streams, args []string, newEngine engineFunc) error {
	root := newRoot(&globals{streams: streams, newEngine: newEngine, newKube: bootstrap.AdminClient})
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func newRoot(g *globals) *cobra.Command {
	streams := g.streams
	root := &cobra.Command{
		Use:   "dk8s",
		Short: "Kubernetes on a machine that has Docker, behind any firewall",
		Long: `dk8s runs Kubernetes as containers the Docker daemon supervises: the
control plane and this host as its node, and more machines that join with a
token. It brings in every image and binary it needs through the mirrors you
can reach, each checked against images.lock.

Behind the Great Firewall or on an air-gapped site:

  dk8s pull --mirror aliyun,daocloud     pull the image set, verified
  dk8s mirrors                           which mirrors answer, with which tags
  dk8s images                            what the set is and what you have
  dk8s save -o k8s.tar / dk8s load -i k8s.tar
                                         carry the set to a machine with no registry
  dk8s start --mirror aliyun,daocloud    the cluster; kubelet through binary mirrors
  dk8s kubectl get nodes                 the pinned kubectl, as the cluster's admin`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.SetOut(streams.Out)
	root.SetErr(streams.Err)
	root.SetIn(streams.In)
	root.SetVersionTemplate("dk8s {{.Version}}\n")
	pf := root.PersistentFlags()
	pf.StringVar(&g.lock, "lock", os.Getenv("DK8S_LOCK"), "image lock `FILE` to use instead of the one built into dk8s (env DK8S_LOCK)")
	pf.StringVar(&g.version, "kubernetes-version", "", "Kubernetes `VERSION` of the lock to use (default: the lock's default)")
	root.AddCommand(newVersion(g), newImages(g), newPull(g), newMirrors(g), newSave(g), newLoad(g),
		newStart(g), newJoin(g), newAgent(g), newPs(g), newStop(g), newReset(g), newLogs(g), newKubeconfig(g), newCerts(g), newToken(g), newEtcd(g),
		newDoctor(g), newKubectl(g), newHostExec(), newCSRApprover(g), newAPIServerLB(g))
	return root
}

// readLock returns the lock the user chose, or the built-in one.
func (g *globals) readLock() (*images.Lock, error) {
	if g.lock != "" {
		return images.ReadLock(g.lock)
	}
	l, err := images.ParseLock(dk8s.DefaultLock)
	if err != nil {
		return nil, fmt.Errorf("the built-in image lock: %w", err)
	}
	return l, nil
}

// release returns the lock's release for --kubernetes-version.
func (g *globals) release() (*images.Lock, *images.Release, error) {
	l, err := g.readLock()
	if err != nil {
		return nil, nil, err
	}
	rel, err := l.Release(g.version)
	return l, rel, err
}

// engine connects to the container engine.
func (g *globals) engine(ctx context.Context) (engine, error) {
	return g.newEngine(ctx)
}

// kube connects to the apiserver of cfg's cluster as its admin.
func (g *globals) kube(cfg bootstrap.Config) (kubernetes.Interface, error) {
	return g.newKube(cfg)
}

// releaseAndEngine is the prelude of the commands that bring images in or
// out: the lock's release for --kubernetes-version, then the engine (the
// caller closes it). Nothing connects when the release is wrong.
func (g *globals) releaseAndEngine(ctx context.Context) (*images.Release, engine, error) {
	_, rel, err := g.release()
	if err != nil {
		return nil, nil, err
	}
	e, err := g.engine(ctx)
	return rel, e, err
}

func newVersion(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print dk8s's version and the Kubernetes releases its lock holds, with what each leaves unverified",
		Long: `Print dk8s's version, then one line per Kubernetes release of the lock:
the default first, and for each whether the lock pins every image of the
release and the sha256 of its host binaries (kubelet, kubectl, kubeadm) for
linux/amd64 and linux/arm64. A verified release is checked end to end before
anything of it runs; an unverified one still runs, and 'dk8s pull' says which
of its images it could not check (--require-verified refuses them).`,
		Example: `  dk8s version
  dk8s version | awk '$3 == "verified" {print $2}'   # the fully pinned releases`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.readLock()
			if err != nil {
				return err
			}
			fmt.Fprintf(g.streams.Out, "dk8s %s\n", Version)
			versions := append([]string{l.Default}, slices.DeleteFunc(l.Versions(), func(v string) bool { return v == l.Default })...)
			var addOns []string
			for _, v := range versions {
				rel, err := l.Release(v)
				if err != nil {
					return err
				}
				mark := ""
				if v == l.Default {
					mark = " (default)"
				}
				fmt.Fprintf(g.streams.Out, "kubernetes %s %s%s\n", v, rel.Pinning(), mark)
				for _, a := range rel.UnpinnedAddOns() {
					if !slices.Contains(addOns, a) {
						addOns = append(addOns, a)
					}
				}
			}
			if len(addOns) > 0 {
				fmt.Fprintf(g.streams.Out, "add-ons without a pinned digest (pulled and reported unverified): %s\n", strings.Join(addOns, ", "))
			}
			return nil
		},
	}
}
