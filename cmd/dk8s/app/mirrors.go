package app

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dk8s/dk8s/pkg/host"
	"github.com/dk8s/dk8s/pkg/images"
	"github.com/dk8s/dk8s/pkg/mirror"
)

// autoHelp is how --mirror auto reads, for every command that takes it.
const autoHelp = `  auto                    probe the catalogue above (all at once, 5s each):
                          which of the release's tags each has and how fast
                          it answers; pull through those that answered, the
                          ones with every tag they serve first (Aliyun's
                          lack of docker.io images does not count: those
                          come from the next), then the quicker.
                          The ranking is remembered for an hour in
                          $XDG_CACHE_HOME/dk8s/mirrors.json (~/.cache/...);
                          'dk8s mirrors' shows it and probes anew
  auto:LIST               the same over the mirrors of LIST instead
                          (auto:daocloud,harbor.local/k8s)`

type mirrorsFlags struct {
	mirrors string
	output  string
	timeout time.Duration
}

func newMirrors(g *globals) *cobra.Command {
	f := &mirrorsFlags{}
	cmd := &cobra.Command{
		Use:   "mirrors",
		Short: "Probe the mirrors and rank them for the release: which tags each has, how fast it answers",
		Long: `Probe every mirror at once, as --mirror auto does, and show the ranking: whether
it answered, how many of the release's images it has (by a HEAD of each
image's manifest under its name there, with the logins of 'docker login'),
the median time of its answers, and its rank. Mirrors with every tag come
first, then those missing fewer, then the quicker; an image of a registry a
mirror does not serve (docker.io's on Aliyun) is listed but not counted, as
the pull takes it from the next mirror. Those that did not answer are not
ranked and not pulled through.

The ranking is stored for the next hour's 'dk8s pull --mirror auto' (and
start and join), so running this also refreshes what they use.

--mirror takes what pull's does; a plain list is probed as if auto:LIST.
` + autoHelp,
		Example: `  dk8s mirrors
  dk8s mirrors --mirror auto:daocloud,harbor.local:8443/google_containers
  dk8s mirrors -o json | jq -r '.[] | select(.rank == 1) | .mirror'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runMirrors(cmd, g, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.mirrors, "mirror", envOr("DK8S_MIRROR", "auto"), "mirrors to probe: auto (the catalogue), auto:LIST, or LIST (env DK8S_MIRROR)")
	fl.StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	fl.DurationVar(&f.timeout, "timeout", mirror.DefaultProbeTimeout, "how long each mirror may take to answer every question")
	return cmd
}

func runMirrors(cmd *cobra.Command, g *globals, f *mirrorsFlags) error {
	if err := checkOutput(f.output, "table", "json"); err != nil {
		return err
	}
	choice, err := mirror.ParseChoice(f.mirrors)
	if err != nil {
		return err
	}
	_, rel, err := g.release()
	if err != nil {
		return err
	}
	r, err := rankMirrors(cmd.Context(), choice.Mirrors, rel, f.timeout, true)
	if err != nil {
		return err
	}
	if r.StoreErr != nil {
		fmt.Fprintf(g.streams.Err, "warning: %v\n", r.StoreErr)
	}
	if err := printProbes(g, f.output, r.Probes); err != nil {
		return err
	}
	// The daemon's own mirrors are not probed (only the daemon knows how
	// it reaches them), but a pull uses them: say so.
	if engine, err := g.engine(cmd.Context()); err == nil {
		if v, err := engine.Version(cmd.Context()); err == nil && len(v.RegistryMirrors) > 0 {
			fmt.Fprintf(g.streams.Err, "docker.io's images also come through the Docker daemon's registry-mirrors (%s), after these\n", strings.Join(v.RegistryMirrors, ", "))
		}
		engine.Close()
	}
	// A script asks "can I pull from here?": no mirror answering is a
	// failure, as it is for 'dk8s pull --mirror auto'.
	if !slices.ContainsFunc(r.Probes, func(p mirror.Probe) bool { return p.Reachable }) {
		fmt.Fprintln(g.streams.Err, "no mirror answered: check this host's network, DNS and proxy, or name a mirror it reaches with --mirror auto:LIST")
		return ExitError{Code: 1}
	}
	return nil
}

// rankMirrors ranks candidates for rel's images: remembered, unless
// refresh, else probed now with Docker's logins.
func rankMirrors(ctx context.Context, candidates []mirror.Mirror, rel *images.Release, timeout time.Duration, refresh bool) (mirror.Ranking, error) {
	creds, err := mirror.LoadDockerCredentials(host.Exec{})
	if err != nil {
		return mirror.Ranking{}, err
	}
	cache, err := mirror.DefaultRankCache()
	if err != nil {
		return mirror.Ranking{}, err
	}
	var names []string
	for _, img := range rel.Images {
		names = append(names, img.Name)
	}
	return mirror.Rank(ctx, candidates, names, mirror.RankOptions{
		Registry: &mirror.Registry{Credentials: creds.Lookup},
		Timeout:  timeout,
		Cache:    cache,
		Refresh:  refresh,
	}), nil
}

// chooseMirrors turns a --mirror choice into the order to pull through:
// as given, or for auto the ranking for rel, which it reports on stderr.
func chooseMirrors(ctx context.Context, g *globals, choice mirror.Choice, rel *images.Release) ([]mirror.Mirror, error) {
	if !choice.Auto {
		return choice.Mirrors, nil
	}
	r, err := rankMirrors(ctx, choice.Mirrors, rel, mirror.DefaultProbeTimeout, false)
	if err != nil {
		return nil, err
	}
	when := "probed now"
	if r.Cached {
		when = fmt.Sprintf("probed %s ago; 'dk8s mirrors' probes anew", time.Since(r.At).Round(time.Second))
	}
	var parts []string
	for _, p := range r.Probes {
		if p.Reachable {
			parts = append(parts, fmt.Sprintf("%d. %s (%d/%d tags, %s)", p.Rank, p.Mirror.Name, p.Have(), p.Images, latency(p.Latency)))
		} else {
			parts = append(parts, fmt.Sprintf("%s did not answer", p.Mirror.Name))
		}
	}
	fmt.Fprintf(g.streams.Err, "Mirrors for Kubernetes %s by --mirror auto (%s): %s\n", rel.Kubernetes, when, strings.Join(parts, ", "))
	if r.StoreErr != nil {
		fmt.Fprintf(g.streams.Err, "warning: %v\n", r.StoreErr)
	}
	return r.Order()
}

func printProbes(g *globals, output string, probes []mirror.Probe) error {
	type lack struct {
		Image  string `json:"image"`
		Reason string `json:"reason"`
	}
	type row struct {
		Mirror    string  `json:"mirror"`
		Prefix    string  `json:"prefix"`
		Reachable bool    `json:"reachable"`
		Error     string  `json:"error,omitempty"`
		Tags      int     `json:"tags"`
		Of        int     `json:"of"`
		Missing   []lack  `json:"missing,omitempty"`
		LatencyMS float64 `json:"latencyMs"`
		Rank      int     `json:"rank"`
	}
	var rows []row
	var cells [][]string
	for _, p := range probes {
		x := row{Mirror: p.Mirror.Name, Prefix: p.Mirror.Prefix, Reachable: p.Reachable, Error: p.Err, Tags: p.Have(), Of: p.Images,
			LatencyMS: float64(p.Latency.Microseconds()) / 1000, Rank: p.Rank}
		for _, l := range p.Missing {
			x.Missing = append(x.Missing, lack{l.Image, l.Reason})
		}
		rows = append(rows, x)
		if !p.Reachable {
			cells = append(cells, []string{p.Mirror.Name, "no", "-", "-", "-"})
			continue
		}
		tags := fmt.Sprintf("%d/%d", p.Have(), p.Images)
		if len(p.Missing) > 0 {
			var short []string
			for _, l := range p.Missing {
				short = append(short, shortName(l.Image))
			}
			tags += " missing: " + strings.Join(short, ", ")
		}
		cells = append(cells, []string{p.Mirror.Name, "yes", tags, latency(p.Latency), fmt.Sprint(p.Rank)})
	}
	if output == "json" {
		return writeJSON(g.streams.Out, rows)
	}
	if err := table(g.streams.Out, []string{"MIRROR", "REACHABLE", "TAGS", "LATENCY", "RANK"}, cells); err != nil {
		return err
	}
	// Why, for what the table can only mark: said once, on stderr.
	for _, p := range probes {
		if !p.Reachable {
			fmt.Fprintf(g.streams.Err, "%s did not answer: %s\n", p.Mirror.Name, p.Err)
		}
		for _, l := range p.Missing {
			fmt.Fprintf(g.streams.Err, "%s lacks %s: %s\n", p.Mirror.Name, l.Image, l.Reason)
		}
	}
	return nil
}

// shortName is an image's name without registry, path or tag: coredns.
func shortName(canonical string) string {
	name := canonical[strings.LastIndex(canonical, "/")+1:]
	name, _, _ = strings.Cut(name, ":")
	return name
}

func latency(d time.Duration) string {
	if d < 10*time.Millisecond {
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}
