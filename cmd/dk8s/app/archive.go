package app

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dk8s/dk8s/pkg/bootstrap"
	"github.com/dk8s/dk8s/pkg/images"
)

func newSave(g *globals) *cobra.Command {
	var out, platform, bundleOut string
	bf := &saveBundleFlags{}
	cmd := &cobra.Command{
		Use:   "save -o FILE | --bundle FILE",
		Short: "Write the image set, or a whole air-gap bundle, for a machine with no registry",
		Long: `Write every image of a Kubernetes version, as Docker has it under its
canonical name, into one tar file led by a lock of that release, which says
what the archive holds. 'dk8s load' on the other machine checks what it loads
against its own lock, not that one. Every image must be present and match the
lock: run 'dk8s pull' first.

With --bundle, write everything a machine with Docker and nothing else needs
to start a node into one file: the image set, kubelet and kubectl of the
release for the platform (from DIR/bin when they are there, else through the
binary mirrors, each checked against its pinned sha256), and this dk8s
binary, of which the node agent's image is made. A manifest of every part's
size and sha256 leads it. 'dk8s load --bundle' checks each part against its
own lock before it loads or installs any of it.`,
		Example: `  dk8s save -o k8s-images.tar
  dk8s save -o - | ssh airgapped dk8s load -i -
  dk8s save --bundle dk8s-bundle.tar     # then, on the machine with no registry:
  tar -xf dk8s-bundle.tar bin/dk8s && ./bin/dk8s load --bundle dk8s-bundle.tar && ./bin/dk8s start`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case out != "" && bundleOut != "":
				return errors.New("--output and --bundle write different files: give one")
			case bundleOut != "":
				return runSaveBundle(cmd.Context(), g, bf, bundleOut, platform)
			case out == "":
				return errors.New("--output is required: name the tar file to write (- for standard output), or --bundle for a whole air-gap bundle")
			}
			rel, engine, err := g.releaseAndEngine(cmd.Context())
			if err != nil {
				return err
			}
			defer engine.Close()
			var w io.Writer = g.streams.Out
			tmp := out + ".partial"
			if out != "-" {
				f, err := os.Create(tmp)
				if err != nil {
					return err
				}
				defer os.Remove(tmp)
				defer f.Close()
				w = f
			}
			fmt.Fprintf(g.streams.Err, "Saving %d images of Kubernetes %s\n", len(rel.Images), rel.Kubernetes)
			if err := images.Save(cmd.Context(), engine, rel, platform, w); err != nil {
				return err
			}
			if out != "-" {
				if err := w.(*os.File).Close(); err != nil {
					return err
				}
				if err := os.Rename(tmp, out); err != nil {
					return err
				}
				fmt.Fprintf(g.streams.Err, "Wrote %s\n", out)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "tar `FILE` to write, - for standard output (required)")
	cmd.Flags().StringVar(&platform, "platform", "", "`OS/ARCH` the images are for (default: the Docker daemon's)")
	cmd.Flags().StringVar(&bundleOut, "bundle", "", "write an air-gap bundle to `FILE` (- for standard output): images, kubelet, kubectl and dk8s")
	cmd.Flags().StringVar(&bf.dir, "dir", bootstrap.DefaultDir, "with --bundle: cluster `DIR` whose bin/ may hold kubelet and kubectl already")
	addBinaryMirrorFlag(cmd.Flags(), &bf.binaryMirrors)
	return cmd
}

type loadFlags struct {
	input           string
	bundle, dir     string
	platform        string
	requireVerified bool
}

func newLoad(g *globals) *cobra.Command {
	f := &loadFlags{}
	cmd := &cobra.Command{
		Use:   "load -i FILE | --bundle FILE",
		Short: "Load an image set or an air-gap bundle written by 'dk8s save', checked against dk8s's own lock",
		Long: `Load an archive that 'dk8s save' wrote and check every image in it against
the lock dk8s trusts: the one built into dk8s, or --lock (DK8S_LOCK). The lock
the archive carries only says which Kubernetes version it holds: whoever can
alter the archive can alter that lock too.

Every image loads under a quarantine name (dk8s-load.local/...) first, and
gets its canonical name and aliases only once it matches the lock. An image
that does not match gets no name at all, and never replaces an image already
present; names in the archive outside the image set are ignored. Images the
lock has no digest for load as unverified, as 'dk8s pull' treats them, unless
--require-verified.

With --bundle, take in a bundle 'dk8s save --bundle' wrote, whole or not at
all: its kubelet and kubectl must have the sha256 the lock pins for this
platform, and every image must pass as above, before any image is named or
any file installed. Then kubelet and kubectl go to DIR/bin, where 'dk8s
start' and 'dk8s kubectl' find them, and the node agent's image is made from
this dk8s binary. A part that fails its check refuses the whole bundle.`,
		Example: `  dk8s load -i k8s-images.tar
  dk8s load -i k8s-images.tar --lock images.lock --require-verified
  ssh pulled dk8s save -o - | dk8s load -i -
  dk8s load --bundle dk8s-bundle.tar && dk8s start`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLoad(cmd, g, f)
		},
	}
	cmd.Flags().StringVarP(&f.input, "input", "i", "", "tar `FILE` to read, - for standard input")
	cmd.Flags().StringVar(&f.bundle, "bundle", "", "air-gap bundle `FILE` to take in whole, - for standard input")
	cmd.Flags().StringVar(&f.dir, "dir", bootstrap.DefaultDir, "with --bundle: cluster `DIR` whose bin/ receives kubelet and kubectl")
	cmd.Flags().StringVar(&f.platform, "platform", "", "`OS/ARCH` the images are for (default: the Docker daemon's)")
	cmd.Flags().BoolVar(&f.requireVerified, "require-verified", false, "refuse images that cannot be verified, instead of loading them as unverified")
	return cmd
}

func runLoad(cmd *cobra.Command, g *globals, f *loadFlags) error {
	switch {
	case f.input != "" && f.bundle != "":
		return errors.New("--input and --bundle read different files: give one")
	case f.bundle != "":
		return runLoadBundle(cmd.Context(), g, f)
	case f.input == "":
		return errors.New("--input is required: name the tar file that 'dk8s save' wrote (- for standard input), or --bundle for an air-gap bundle")
	}
	lock, err := g.readLock()
	if err != nil {
		return err
	}
	var r io.Reader = g.streams.In
	if f.input != "-" {
		file, err := os.Open(f.input)
		if err != nil {
			return err
		}
		defer file.Close()
		r = file
	}
	engine, err := g.engine(cmd.Context())
	if err != nil {
		return err
	}
	defer engine.Close()
	fmt.Fprintf(g.streams.Err, "Loading %s, checked against %s\n", f.input, g.lockSource())
	loaded, err := images.Load(cmd.Context(), engine, lock, r, images.LoadOptions{
		Platform:        f.platform,
		Kubernetes:      g.version,
		RequireVerified: f.requireVerified,
	})
	if loaded != nil {
		if perr := printLoaded(g, loaded); perr != nil {
			return perr
		}
	}
	return err
}

func printLoaded(g *globals, loaded *images.Loaded) error {
	fmt.Fprintf(g.streams.Err, "Kubernetes %s:\n", loaded.Release.Kubernetes)
	var rows [][]string
	for _, res := range loaded.Results {
		status := "loaded"
		switch {
		case res.Err != nil:
			status = "FAILED: " + firstLine(res.Err)
		case res.Skipped:
			status = "present"
		}
		rows = append(rows, []string{res.Image.Name, status, res.Verdict.String()})
	}
	if err := table(g.streams.Out, []string{"IMAGE", "STATUS", "VERIFIED"}, rows); err != nil {
		return err
	}
	for _, res := range loaded.Results {
		if res.Err == nil && res.Verdict == images.Unverified {
			fmt.Fprintf(g.streams.Err, "%s: unverified: %s\n", res.Image.Name, res.Detail)
		}
	}
	if len(loaded.Ignored) > 0 {
		fmt.Fprintf(g.streams.Err, "Ignored %d names in the archive that are no image of Kubernetes %s in %s; they were given no name: %s\n",
			len(loaded.Ignored), loaded.Release.Kubernetes, g.lockSource(), strings.Join(loaded.Ignored, ", "))
	}
	return nil
}

// lockSource says which lock dk8s trusts, for messages.
func (g *globals) lockSource() string {
	if g.lock != "" {
		return g.lock
	}
	return "the lock built into dk8s"
}
