package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/dk8s/dk8s/pkg/host"
	"github.com/dk8s/dk8s/pkg/images"
)

// KubectlOptions say whose kubectl Kubectl runs, and with what.
type KubectlOptions struct {
	// Dir is the cluster directory: its admin.conf, and bin/kubectl.
	Dir string
	// Lock pins the kubectl fetched when bin/kubectl is missing: the
	// release the cluster last started with, else the lock's default.
	Lock *images.Lock
	// Fetcher fetches it; nil is dl.k8s.io.
	Fetcher *host.Fetcher
	// Args go to kubectl as they are.
	Args           []string
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Kubectl runs the cluster's kubectl (Dir/bin/kubectl, fetched through the
// binary mirrors and checked against its pin when missing) as the
// cluster's admin, and returns its exit code. An error is returned only
// when kubectl could not be run: no cluster, no kubectl to be had.
func Kubectl(ctx context.Context, o KubectlOptions) (int, error) {
	admin := Config{Dir: o.Dir}.AdminKubeconfig()
	settings, _ := ReadSettings(o.Dir)
	if _, err := os.Stat(admin); err != nil && !helpOnly(o.Args) {
		return 0, noAdmin(o.Dir, admin, settings, err)
	}
	path, err := kubectlBinary(ctx, o, settings)
	if err != nil {
		return 0, err
	}
	return host.RunAttached(ctx, path, o.Args, []string{"KUBECONFIG=" + admin}, o.Stdin, o.Stdout, o.Stderr)
}

// noAdmin says why admin, the admin kubeconfig of dir, cannot be used,
// given the error of its stat. The cluster directory is root's and 0700:
// a user who forgot sudo is told so, not that there is no cluster.
func noAdmin(dir, admin string, settings *Settings, err error) error {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("cannot read %s: %w: the cluster's admin kubeconfig is root's: run 'sudo dk8s kubectl ...'", admin, err)
	case settings.IsWorker():
		return fmt.Errorf("%s holds a worker joined to %s, and a worker has no admin kubeconfig: run 'dk8s kubectl' on a control plane", dir, settings.Server)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("cannot read %s: %w", admin, err)
	}
	return fmt.Errorf("no cluster in %s (it has no admin.conf): start one with 'dk8s start', or set DK8S_DIR to the directory of yours", dir)
}

// kubectlBinary returns Dir/bin/kubectl, fetching it first when it is
// missing: the kubectl of the release the cluster last started with.
func kubectlBinary(ctx context.Context, o KubectlOptions, settings *Settings) (string, error) {
	path := filepath.Join(o.Dir, "bin", "kubectl")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	version := ""
	if settings != nil {
		version = settings.KubernetesVersion
	}
	rel, err := o.Lock.Release(version)
	if err != nil {
		return "", err
	}
	f := o.Fetcher
	if f == nil {
		f = &host.Fetcher{}
	}
	if _, err := f.Fetch(ctx, rel, "kubectl", path); err != nil {
		return "", fmt.Errorf("no kubectl in %s, and %w: put a kubectl you trust there, or run yours with KUBECONFIG=%s",
			filepath.Dir(path), err, Config{Dir: o.Dir}.AdminKubeconfig())
	}
	return path, nil
}

// helpOnly tells a request for kubectl's own help, which needs no cluster.
func helpOnly(args []string) bool {
	if len(args) == 0 {
		return true
	}
	for _, a := range args {
		if a == "--help" || a == "-h" {
			return true
		}
	}
	switch args[0] {
	case "help", "options", "completion":
		return true
	case "version":
		for _, a := range args[1:] {
			if a == "--client" || a == "--client=true" {
				return true
			}
		}
	}
	return false
}
