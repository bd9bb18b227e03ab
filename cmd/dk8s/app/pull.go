package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dk8s/dk8s/pkg/bootstrap"
	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/host"
	"github.com/dk8s/dk8s/pkg/images"
	"github.com/dk8s/dk8s/pkg/mirror"
)

type pullFlags struct {
	mirrors         string
	platform        string
	parallel        int
	keepMirrorTags  bool
	requireVerified bool
	output          string
	dir             string
	binaryMirrors   string
}

func newPull(g *globals) *cobra.Command {
	f := &pullFlags{}
	cmd := &cobra.Command{
		Use:   "pull",
		Short: "Pull every image of the cluster through mirrors, verified, under canonical names",
		Long: `Pull every image of a Kubernetes version through the Docker daemon from the
first mirror that has it, check it against images.lock, and tag it with its
canonical name (registry.k8s.io/..., or docker.io/... for flannel, which Docker
shows as flannel/flannel) and legacy aliases (k8s.gcr.io/...).

--mirror is an ordered list. Per image, when a mirror is down, lacks the tag,
or serves content that does not match the lock, the next one is tried.
Temporary errors are retried with backoff first. Images already present and
matching are skipped, so a rerun is a quick no-op, and an interrupted pull
finishes when run again. The mirror's own name for each image is removed
afterwards (by name, never by ID) unless --keep-mirror-tags.

Mirrors, with where each serves registry.k8s.io's images and docker.io's
(flannel's): a mirror not known to serve docker.io is passed over for it.
` + mirrorHelp() + `
  HOST[:PORT]/PATH        your own registry, flat like aliyun, for both
                          (registry.local/k8s -> registry.local/k8s/coredns,
                          registry.local/k8s/flannel)
  HOST[:PORT][/PATH]/...  your own registry, keeping upstream paths
                          (registry.local/... -> registry.local/coredns/coredns,
                          registry.local/flannel/flannel)
  (after the list)        the Docker daemon's own registry-mirrors
                          (daemon.json), for docker.io's images: pulled by
                          their canonical names through the daemon
` + autoHelp + `

Private mirrors use the logins of 'docker login', from Docker's credential
helpers (credHelpers, credsStore) as docker itself does.

Then kubelet and kubectl of the release come into DIR/bin (--dir), for
'dk8s start' and 'dk8s kubectl', when images.lock pins their sha256 for this
machine and no cluster in DIR runs another release (its node runs
DIR/bin/kubelet); a file already there and matching is kept.

` + binaryMirrorHelp() + `
Exits non-zero when any image or binary could not be brought in, naming it
and what each mirror said.`,
		Example: `  dk8s pull --mirror aliyun,daocloud        # flannel (docker.io) from daocloud
  dk8s pull --mirror auto                   # the catalogue, best first
  dk8s pull --mirror aliyun,daocloud,upstream
  dk8s pull --mirror harbor.corp.local:8443/google_containers --platform linux/arm64
  dk8s pull --mirror aliyun --binary-mirror daocloud-files,https://files.example.com/dl.k8s.io
  DK8S_MIRROR=daocloud dk8s pull`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPull(cmd, g, f)
		},
	}
	def := os.Getenv("DK8S_MIRROR")
	if def == "" {
		def = "upstream"
	}
	fl := cmd.Flags()
	fl.StringVar(&f.mirrors, "mirror", def, "mirrors to try, in order, comma-separated; or auto, auto:LIST to rank them by a probe (env DK8S_MIRROR)")
	fl.StringVar(&f.platform, "platform", "", "`OS/ARCH` to pull (default: the Docker daemon's)")
	fl.IntVar(&f.parallel, "parallel", 0, "images to pull at once (0: all; Docker's max-concurrent-downloads still bounds the layers)")
	fl.BoolVar(&f.keepMirrorTags, "keep-mirror-tags", false, "keep each mirror's name for the images beside the canonical names")
	fl.BoolVar(&f.requireVerified, "require-verified", false, "refuse images the lock has no digest for: they get no name and the pull fails, instead of a warning")
	fl.StringVarP(&f.output, "output", "o", "table", "summary format: table or json")
	fl.StringVar(&f.dir, "dir", bootstrap.DefaultDir, "cluster `DIR` whose bin/ receives kubelet and kubectl, when the lock pins their sha256")
	addBinaryMirrorFlag(fl, &f.binaryMirrors)
	return cmd
}

// pullShown pulls with Docker's stored logins, showing progress on stderr.
func pullShown(ctx context.Context, g *globals, engine containers.Engine, rel *images.Release, opts images.PullOptions) ([]images.Result, error) {
	view := newPullView(g.streams.Err, rel)
	defer view.stop()
	creds, err := mirror.LoadDockerCredentials(host.Exec{})
	if err != nil {
		return nil, err
	}
	opts.Auth = creds.EngineAuth
	opts.Events = view.event
	opts.Mirrors = withDaemonMirrors(ctx, g, engine, rel, opts.Mirrors)
	return images.Pull(ctx, engine, rel, opts)
}

// withDaemonMirrors adds, last, the Docker daemon's own mirrors of Docker
// Hub ("registry-mirrors" in daemon.json, which most hosts in China have)
// for the release's docker.io images (flannel, the agent's base), which
// Aliyun's google_containers does not carry: a pull of their canonical
// names through the daemon goes to those mirrors, and is verified as any
// other. A daemon with none, or that cannot say, adds nothing.
func withDaemonMirrors(ctx context.Context, g *globals, engine containers.Engine, rel *images.Release, mirrors []mirror.Mirror) []mirror.Mirror {
	var hub []string
	for _, img := range rel.Images {
		if strings.HasPrefix(img.Name, mirror.DockerHub+"/") {
			hub = append(hub, img.Component)
		}
	}
	if len(hub) == 0 || slices.ContainsFunc(mirrors, func(m mirror.Mirror) bool { return m.Name == mirror.DaemonName }) {
		return mirrors
	}
	v, err := engine.Version(ctx)
	if err != nil || len(v.RegistryMirrors) == 0 {
		return mirrors
	}
	fmt.Fprintf(g.streams.Err, "docker.io's images (%s) fall back to the Docker daemon's registry-mirrors: %s\n", strings.Join(hub, ", "), strings.Join(v.RegistryMirrors, ", "))
	return append(slices.Clone(mirrors), mirror.Daemon(v.RegistryMirrors))
}

func mirrorHelp() string {
	var b strings.Builder
	for _, m := range mirror.Catalogue() {
		hub := m.Hub
		if hub == "" {
			hub = "none known"
		}
		fmt.Fprintf(&b, "  %-23s %s\n  %-23s docker.io: %s\n  %-23s %s, %s\n", m.Name, m.Prefix, "", hub, "", m.About, m.Layout)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func runPull(cmd *cobra.Command, g *globals, f *pullFlags) error {
	if err := checkOutput(f.output, "table", "json"); err != nil {
		return err
	}
	if f.parallel < 0 {
		return fmt.Errorf("--parallel must be 0 (all at once) or more, got %d", f.parallel)
	}
	choice, err := mirror.ParseChoice(f.mirrors)
	if err != nil {
		return err
	}
	binMirrors, err := binaryMirrors(f.binaryMirrors, choice.Mirrors)
	if err != nil {
		return err
	}
	dir, err := bootstrap.AbsDir(f.dir)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	rel, engine, err := g.releaseAndEngine(ctx)
	if err != nil {
		return err
	}
	defer engine.Close()
	mirrors, err := chooseMirrors(ctx, g, choice, rel)
	if err != nil {
		return err
	}
	var names []string
	for _, m := range mirrors {
		names = append(names, m.Name)
	}
	fmt.Fprintf(g.streams.Err, "Pulling %d images of Kubernetes %s from %s\n", len(rel.Images), rel.Kubernetes, strings.Join(names, ", then "))
	start := time.Now()
	results, err := pullShown(ctx, g, engine, rel, images.PullOptions{
		Mirrors:         mirrors,
		Platform:        f.platform,
		Parallel:        f.parallel,
		KeepMirrorTags:  f.keepMirrorTags,
		RequireVerified: f.requireVerified,
	})
	if ctx.Err() != nil {
		return err
	}
	if results != nil {
		if perr := printPullSummary(g, f.output, results); perr != nil {
			return perr
		}
	}
	if err != nil {
		var pe *images.PullError
		if errors.As(err, &pe) {
			fmt.Fprintln(g.streams.Err, describeFailures(pe))
			return ExitError{Code: 1}
		}
		return err
	}
	if err := pullBinaries(ctx, g, rel, dir, binMirrors); err != nil {
		return err
	}
	unverified := 0
	for _, r := range results {
		if r.Verdict == images.Unverified {
			unverified++
		}
	}
	fmt.Fprintf(g.streams.Err, "Done in %s.", time.Since(start).Round(100*time.Millisecond))
	if unverified > 0 {
		fmt.Fprintf(g.streams.Err, " %d images are unverified: images.lock has no digest for them (record them with 'dk8s images lock --from upstream' where upstream is reachable; --require-verified refuses them).", unverified)
	}
	fmt.Fprintln(g.streams.Err)
	return nil
}

func printPullSummary(g *globals, output string, results []images.Result) error {
	type row struct {
		Image    string  `json:"image"`
		Mirror   string  `json:"mirror,omitempty"`
		Status   string  `json:"status"`
		Verified string  `json:"verified"`
		Detail   string  `json:"detail,omitempty"`
		Seconds  float64 `json:"seconds"`
		Error    string  `json:"error,omitempty"`
	}
	var rows []row
	for _, r := range results {
		x := row{Image: r.Image.Name, Mirror: r.Mirror, Status: "pulled", Verified: r.Verdict.String(), Detail: r.Detail, Seconds: r.Elapsed.Seconds()}
		switch {
		case r.Err != nil:
			x.Status, x.Error, x.Verified = "failed", r.Err.Error(), "-"
			if errors.Is(r.Err, images.ErrUnverified) {
				x.Verified = r.Verdict.String()
			}
		case r.Skipped:
			x.Status, x.Mirror = "present", "-"
		}
		rows = append(rows, x)
	}
	if output == "json" {
		return writeJSON(g.streams.Out, rows)
	}
	var cells [][]string
	for _, x := range rows {
		cells = append(cells, []string{x.Image, x.Mirror, x.Status, x.Verified, fmt.Sprintf("%.1fs", x.Seconds)})
	}
	return table(g.streams.Out, []string{"IMAGE", "MIRROR", "STATUS", "VERIFIED", "TIME"}, cells)
}

func describeFailures(pe *images.PullError) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of the images could not be brought in:\n", len(pe.Failed))
	unverified, hubless := 0, false
	for _, r := range pe.Failed {
		if errors.Is(r.Err, images.ErrUnverified) {
			unverified++
		}
		if strings.HasPrefix(r.Image.Name, mirror.DockerHub+"/") && !slices.ContainsFunc(r.Tried, func(t mirror.Tried) bool { return t.Mirror.Name == mirror.DaemonName }) {
			hubless = true
		}
		fmt.Fprintf(&b, "  %s\n", r.Image.Name)
		var ex *mirror.ExhaustedError
		if errors.As(r.Err, &ex) {
			for _, t := range ex.Tried {
				fmt.Fprintf(&b, "    %s: %v\n", t.Mirror.Name, t.Err)
			}
		} else {
			fmt.Fprintf(&b, "    %v\n", r.Err)
		}
	}
	if hubless {
		b.WriteString("docker.io's images need a mirror of Docker Hub: add one (--mirror aliyun,daocloud), or give the Docker daemon one, which dk8s pulls through: \"registry-mirrors\": [\"https://MIRROR\"] in /etc/docker/daemon.json, then restart dockerd.\n")
	}
	if unverified < len(pe.Failed) {
		b.WriteString("Add a mirror that has them (--mirror a,b,...), or carry them in with 'dk8s save' and 'dk8s load'.")
	}
	if unverified > 0 {
		if unverified < len(pe.Failed) {
			b.WriteString("\n")
		}
		b.WriteString("For the unverified ones, record their digests with 'dk8s images lock --from upstream' where upstream is reachable, or pull without --require-verified.")
	}
	return b.String()
}

// pullBinaries brings the release's kubelet and kubectl into dir/bin
// through the binary mirrors, each checked against its pin. One the lock
// does not pin is passed over, saying what to do instead.
func pullBinaries(ctx context.Context, g *globals, rel *images.Release, dir string, mirrors []mirror.BinaryMirror) error {
	// DIR/bin/kubelet is the file the node's agent runs: replaced by
	// another release's, the node would come back from its next restart
	// with a kubelet its apiserver does not match. 'dk8s start
	// --kubernetes-version' brings the new one when it upgrades.
	if s, err := bootstrap.ReadSettings(dir); err == nil && s.KubernetesVersion != "" && s.KubernetesVersion != rel.Kubernetes {
		fmt.Fprintf(g.streams.Err, "kubelet and kubectl %s: not fetched: the cluster in %s runs %s, and %s/bin holds its own; 'dk8s start --kubernetes-version %s' fetches them when it upgrades\n",
			rel.Kubernetes, dir, s.KubernetesVersion, dir, rel.Kubernetes)
		return nil
	}
	fetch := &host.Fetcher{Mirrors: mirrors, Events: newBinaryView(g.streams.Err).event}
	instead := map[string]string{
		"kubelet": "'dk8s start' takes --kubelet-binary or a kubelet on the PATH",
		"kubectl": "'dk8s kubectl' runs " + filepath.Join(dir, "bin", "kubectl") + " when you put one there",
	}
	var failed []string
	for _, name := range []string{"kubelet", "kubectl"} {
		_, err := fetch.Fetch(ctx, rel, name, filepath.Join(dir, "bin", name))
		var fe *host.FetchError
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, host.ErrUnpinned):
			fmt.Fprintf(g.streams.Err, "%s %s: not fetched: %v; %s\n", name, rel.Kubernetes, err, instead[name])
		case errors.As(err, &fe):
			failed = append(failed, name) // each mirror's answer is shown above
		case err != nil:
			return fmt.Errorf("%s %s: %w", name, rel.Kubernetes, err) // this host's, such as a DIR it cannot write
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s could not be brought into %s/bin: no binary mirror served what images.lock pins; %s", strings.Join(failed, " and "), dir, host.FetchHint)
	}
	return nil
}
