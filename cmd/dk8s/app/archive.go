package app

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/dk8s/dk8s/pkg/images"
)

func newSave(g *globals) *cobra.Command {
	var out, platform string
	cmd := &cobra.Command{
		Use:   "save -o FILE",
		Short: "Write the image set, with its lock, to a tar for a machine with no registry",
		Long: `Write every image of a Kubernetes version, as Docker has it under its
canonical name, into one tar file that also carries the lock, so that
'dk8s load' on another machine can check what it loads. Every image must be
present and match the lock: run 'dk8s pull' first.`,
		Example: `  dk8s save -o k8s-images.tar
  dk8s save -o - | ssh airgapped dk8s load -i -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--output is required: name the tar file to write (- for standard output)")
			}
			_, rel, err := g.release()
			if err != nil {
				return err
			}
			engine, err := g.engine(cmd.Context())
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

func newLoad(g *globals) *cobra.Command {
	var in, platform string
	cmd := &cobra.Command{
		Use:   "load -i FILE",
		Short: "Load an image set written by 'dk8s save', checked against the lock it carries",
		Example: `  dk8s load -i k8s-images.tar
  dk8s images --lock <(tar -xOf k8s-images.tar dk8s-images.lock)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if in == "" {
				return errors.New("--input is required: name the tar file that 'dk8s save' wrote (- for standard input)")
			}
			var r io.Reader = g.streams.In
			if in != "-" {
				f, err := os.Open(in)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			engine, err := g.engine(cmd.Context())
			if err != nil {
				return err
			}
			defer engine.Close()
			fmt.Fprintf(g.streams.Err, "Loading %s\n", in)
			lock, results, err := images.Load(cmd.Context(), engine, r, platform)
			if results != nil {
				rel, _ := lock.Release("")
				fmt.Fprintf(g.streams.Err, "Kubernetes %s:\n", rel.Kubernetes)
				var rows [][]string
				for _, res := range results {
					status := "loaded"
					if res.Err != nil {
						status = "FAILED: " + firstLine(res.Err)
					}
					rows = append(rows, []string{res.Image.Name, status, res.Verdict.String()})
				}
				if terr := table(g.streams.Out, []string{"IMAGE", "STATUS", "VERIFIED"}, rows); terr != nil {
					return terr
				}
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&in, "input", "i", "", "tar `FILE` to read, - for standard input (required)")
	cmd.Flags().StringVar(&platform, "platform", "", "`OS/ARCH` the images are for (default: the Docker daemon's)")
	return cmd
}
