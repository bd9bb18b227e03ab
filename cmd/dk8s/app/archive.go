package app

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dk8s/dk8s/pkg/images"
)

func newSave(g *globals) *cobra.Command {
	var out, platform string
	cmd := &cobra.Command{
		Use:   "save -o FILE",
		Short: "Write the image set to a tar for a machine with no registry",
		Long: `Write every image of a Kubernetes version, as Docker has it under its
canonical name, into one tar file led by a lock of that release, which says
what the archive holds. 'dk8s load' on the other machine checks what it loads
against its own lock, not that one. Every image must be present and match the
lock: run 'dk8s pull' first.`,
		Example: `  dk8s save -o k8s-images.tar
  dk8s save -o - | ssh airgapped dk8s load -i -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--output is required: name the tar file to write (- for standard output)")
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
	return cmd
}

type loadFlags struct {
	input           string
	platform        string
	requireVerified bool
}

func newLoad(g *globals) *cobra.Command {
	f := &loadFlags{}
	cmd := &cobra.Command{
		Use:   "load -i FILE",
		Short: "Load an image set written by 'dk8s save', checked against dk8s's own lock",
		Long: `Load an archive that 'dk8s save' wrote and check every image in it against
the lock dk8s trusts: the one built into dk8s, or --lock (DK8S_LOCK). The lock
the archive carries only says which Kubernetes version it holds: whoever can
alter the archive can alter that lock too.

Every image loads under a quarantine name (dk8s-load.local/...) first, and
gets its canonical name and aliases only once it matches the lock. An image
that does not match gets no name at all, and never replaces an image already
present; names in the archive outside the image set are ignored. Images the
lock has no digest for load as unverified, as 'dk8s pull' treats them, unless
--require-verified.`,
		Example: `  dk8s load -i k8s-images.tar
  dk8s load -i k8s-images.tar --lock images.lock --require-verified
  ssh pulled dk8s save -o - | dk8s load -i -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLoad(cmd, g, f)
		},
	}
	cmd.Flags().StringVarP(&f.input, "input", "i", "", "tar `FILE` to read, - for standard input (required)")
	cmd.Flags().StringVar(&f.platform, "platform", "", "`OS/ARCH` the images are for (default: the Docker daemon's)")
	cmd.Flags().BoolVar(&f.requireVerified, "require-verified", false, "refuse images that cannot be verified, instead of loading them as unverified")
	return cmd
}

func runLoad(cmd *cobra.Command, g *globals, f *loadFlags) error {
	if f.input == "" {
		return errors.New("--input is required: name the tar file that 'dk8s save' wrote (- for standard input)")
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
