package mirror

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Probe is what one look at a mirror found: whether it answers, which of
// the images asked about it lacks, and how long it takes to answer.
type Probe struct {
	Mirror    Mirror
	Reachable bool
	// Err says why the mirror is unreachable.
	Err string `json:",omitempty"`
	// Images is how many images were asked about.
	Images int
	// Missing are the images it cannot serve: the tag is not there, its
	// registry is not served, or the question failed.
	Missing []Lack `json:",omitempty"`
	// Latency is the median time of its answers (the ping and each
	// manifest's HEAD): round trips, not bandwidth.
	Latency time.Duration
	// Rank is its place in the order, from 1; 0 for an unreachable mirror,
	// which is left out of the order.
	Rank int
}

// Lack is an image a mirror cannot serve, and why.
type Lack struct {
	Image  string // canonical name
	Reason string
	// NotServed marks an image of a registry the mirror is not known to
	// serve (docker.io's on Aliyun's): a pull passes such a mirror over
	// for that image at once, so it does not count against the mirror's
	// rank.
	NotServed bool `json:",omitempty"`
}

// Have is how many of the images the mirror serves: none, when it did not
// answer.
func (p Probe) Have() int {
	if !p.Reachable {
		return 0
	}
	return p.Images - len(p.Missing)
}

// DefaultProbeTimeout bounds the probe of one mirror: a mirror that takes
// longer to say whether it has seven tags is no mirror to pull through.
const DefaultProbeTimeout = 5 * time.Second

// ProbeAll looks at every candidate at once for the images (canonical
// names), each mirror within timeout (0 means DefaultProbeTimeout), and
// returns them ranked (see RankProbes).
func ProbeAll(ctx context.Context, reg *Registry, candidates []Mirror, images []string, timeout time.Duration) []Probe {
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	probes := make([]Probe, len(candidates))
	var wg sync.WaitGroup
	for i, m := range candidates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			probes[i] = probeOne(ctx, reg, m, images)
		}()
	}
	wg.Wait()
	RankProbes(probes)
	return probes
}

func probeOne(ctx context.Context, reg *Registry, m Mirror, images []string) Probe {
	p := Probe{Mirror: m, Images: len(images)}
	host, _, _ := strings.Cut(m.Prefix, "/")
	start := time.Now()
	if err := reg.Ping(ctx, host); err != nil {
		p.Err = err.Error()
		return p
	}
	p.Reachable = true
	times := []time.Duration{time.Since(start)}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, img := range images {
		ref, err := m.Ref(img)
		if err != nil {
			p.Missing = append(p.Missing, Lack{Image: img, Reason: err.Error(), NotServed: errors.Is(err, ErrNotServed)})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			err := reg.Exists(ctx, ref)
			took := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrNotFound):
				p.Missing = append(p.Missing, Lack{Image: img, Reason: ref + " not found"})
				times = append(times, took)
			case err != nil:
				p.Missing = append(p.Missing, Lack{Image: img, Reason: err.Error()})
			default:
				times = append(times, took)
			}
		}()
	}
	wg.Wait()
	sort.Slice(p.Missing, func(i, j int) bool { return p.Missing[i].Image < p.Missing[j].Image })
	slices.Sort(times)
	p.Latency = times[len(times)/2]
	return p
}

// RankProbes orders probes best first and numbers them: mirrors that
// answer before those that do not, then those lacking fewer of the images
// they serve (a mirror with every one first), then the quicker. An image
// of a registry a mirror does not serve is not counted: the pull takes it
// from the next mirror without asking this one, so Aliyun, which serves
// no docker.io image, still comes first when it is the quicker. Unreachable
// mirrors keep Rank 0.
func RankProbes(probes []Probe) {
	sort.SliceStable(probes, func(i, j int) bool {
		a, b := probes[i], probes[j]
		if a.Reachable != b.Reachable {
			return a.Reachable
		}
		if la, lb := a.lacking(), b.lacking(); la != lb {
			return la < lb
		}
		return a.Latency < b.Latency
	})
	for i := range probes {
		probes[i].Rank = 0
		if probes[i].Reachable {
			probes[i].Rank = i + 1
		}
	}
}

// lacking is how many images the mirror serves the registry of and does
// not have.
func (p Probe) lacking() int {
	n := 0
	for _, l := range p.Missing {
		if !l.NotServed {
			n++
		}
	}
	return n
}

// Ping asks host's registry API root whether it is there: any HTTP answer,
// a login wanted included, means it is.
func (r *Registry) Ping(ctx context.Context, host string) error {
	if host == DockerHub {
		host = dockerHubAPI
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s/v2/", scheme(host), host), nil)
	if err != nil {
		return err
	}
	s := &session{r: r, host: host}
	resp, err := s.client().Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Exists asks whether ref (HOST/PATH:TAG) is on its registry, by a HEAD
// of its manifest: an error wrapping ErrNotFound when it is not.
func (r *Registry) Exists(ctx context.Context, ref string) error {
	host, repo, tag, err := splitRef(ref)
	if err != nil {
		return err
	}
	if host == DockerHub {
		host = dockerHubAPI
	}
	s := &session{r: r, host: host, repo: repo}
	accept := strings.Join([]string{mediaOCIIndex, mediaDockerList, mediaOCIManifest, mediaDockerSchema}, ", ")
	_, _, err = s.do(ctx, http.MethodHead, "/manifests/"+tag, accept)
	return err
}
