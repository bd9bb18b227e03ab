package app

import (
	"fmt"
	"strings"

	"github.com/dk8s/dk8s/internal/atomicfile"

	"github.com/spf13/cobra"

	"github.com/dk8s/dk8s/pkg/host"
	"github.com/dk8s/dk8s/pkg/images"
	"github.com/dk8s/dk8s/pkg/mirror"
)

type imagesFlags struct {
	output   string
	mirror   string
	platform string
}

func newImages(g *globals) *cobra.Command {
	f := &imagesFlags{}
	cmd := &cobra.Command{
		Use:   "images",
		Short: "Show the image set of a Kubernetes version and what Docker has of it",
		Long: `Show every image the lock names for a Kubernetes version: its canonical
name, its name on a mirror (with --mirror), whether the lock pins its digest,
whether Docker has it, and whether what Docker has matches the lock's digests.
A last line on standard error says whether the release is verified: every
image and host binary pinned.`,
		Example: `  dk8s images
  dk8s images --mirror aliyun          # where each image lives on Aliyun
  dk8s images -o name                  # canonical names, one a line
  dk8s images -o json | jq '.[] | select(.present == false)'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runImages(cmd, g, f)
		},
	}
	cmd.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table, json or name")
	cmd.Flags().StringVar(&f.mirror, "mirror", "", "show each image's name on this `MIRROR` (a name from 'dk8s pull --help', or HOST[:PORT]/PATH)")
	cmd.Flags().StringVar(&f.platform, "platform", "", "`OS/ARCH` to verify for (default: the Docker daemon's)")
	cmd.AddCommand(newImagesLock(g))
	return cmd
}

func runImages(cmd *cobra.Command, g *globals, f *imagesFlags) error {
	if err := checkOutput(f.output, "table", "json", "name"); err != nil {
		return err
	}
	_, rel, err := g.release()
	if err != nil {
		return err
	}
	if f.output == "name" {
		for _, img := range rel.Images {
			fmt.Fprintln(g.streams.Out, img.Name)
		}
		return nil
	}
	var m *mirror.Mirror
	if f.mirror != "" {
		mm, err := mirror.Parse(f.mirror)
		if err != nil {
			return err
		}
		m = &mm
	}
	engine, err := g.engine(cmd.Context())
	if err != nil {
		return err
	}
	defer engine.Close()
	sts, err := images.Inspect(cmd.Context(), engine, rel, m, f.platform)
	if err != nil {
		return err
	}
	if f.output == "json" {
		return writeJSON(g.streams.Out, sts)
	}
	header := []string{"IMAGE", "PINNED", "PRESENT", "VERIFIED"}
	if m != nil {
		header = []string{"IMAGE", "ON MIRROR", "PINNED", "PRESENT", "VERIFIED"}
	}
	var rows [][]string
	for _, st := range sts {
		row := []string{st.Name, yesNo(st.Pinned), yesNo(st.Present), st.Verdict}
		if m != nil {
			ref := st.MirrorRef
			if ref == "" {
				ref = "- (not served)"
			}
			row = append([]string{st.Name, ref}, row[1:]...)
		}
		rows = append(rows, row)
	}
	if err := table(g.streams.Out, header, rows); err != nil {
		return err
	}
	fmt.Fprintf(g.streams.Err, "Kubernetes %s: %s by images.lock ('dk8s version' lists every release)\n", rel.Kubernetes, rel.Pinning())
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

type lockFlags struct {
	from        string
	file        string
	platforms   string
	makeDefault bool
}

func newImagesLock(g *globals) *cobra.Command {
	f := &lockFlags{}
	cmd := &cobra.Command{
		Use:   "lock --from MIRROR",
		Short: "Record in the lock the digests a registry serves for the image set",
		Long: `Resolve every image of a Kubernetes version on a registry (upstream or a
mirror) straight from its HTTP API, without pulling, and write the digests
into the lock: the index digest the tag resolves to, and per platform the
manifest and config digests.

Resolve from upstream (or a faithful mirror such as daocloud) to record
upstream's digests. The release (its image names and tags) must already be in
the lock; image versions per Kubernetes release come from kubeadm's constants,
flannel's from flannel's releases. The registry must serve every image: aliyun
is not known to serve docker.io's (flannel's).`,
		Example: `  dk8s images lock --from upstream                   # refresh ./images.lock
  dk8s images lock --from 127.0.0.1:5001/google_containers --file test.lock
  dk8s images lock --from daocloud --kubernetes-version v1.36.2 --file -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runImagesLock(cmd, g, f) },
	}
	cmd.Flags().StringVar(&f.from, "from", "", "registry to resolve on: `MIRROR` name or HOST[:PORT]/PATH (required)")
	cmd.Flags().StringVar(&f.file, "file", "", "lock `FILE` to write, - for standard output (default: --lock, else ./images.lock)")
	cmd.Flags().StringVar(&f.platforms, "platform", "linux/amd64,linux/arm64", "platforms to record, comma-separated")
	cmd.Flags().BoolVar(&f.makeDefault, "make-default", false, "also make this release the lock's default (for a lock of your own registry's images; the shipped default is the newest fully pinned release)")
	return cmd
}

func runImagesLock(cmd *cobra.Command, g *globals, f *lockFlags) error {
	if f.from == "" {
		return fmt.Errorf("--from is required: name the registry to read digests from (e.g. --from upstream)")
	}
	m, err := mirror.Parse(f.from)
	if err != nil {
		return err
	}
	lock, rel, err := g.release()
	if err != nil {
		return err
	}
	creds, err := mirror.LoadDockerCredentials(host.Exec{})
	if err != nil {
		return err
	}
	reg := &mirror.Registry{Credentials: creds.Lookup}
	fmt.Fprintf(g.streams.Err, "Resolving %d images of Kubernetes %s on %s\n", len(rel.Images), rel.Kubernetes, m.Name)
	if f.makeDefault {
		copied := *lock
		copied.Default = rel.Kubernetes
		lock = &copied
	}
	data, err := images.RefreshLock(cmd.Context(), reg, m, lock, *rel, splitList(f.platforms))
	if err != nil {
		return err
	}
	if f.file == "-" {
		_, err = g.streams.Out.Write(data)
		return err
	}
	file := f.file
	if file == "" {
		file = g.lock
	}
	if file == "" {
		file = "images.lock"
	}
	if err := atomicfile.Write(file, data, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(g.streams.Err, "Wrote %s\n", file)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
