package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Choice is what a --mirror list says: a fixed order, or, for "auto", the
// candidates to probe and rank.
type Choice struct {
	Mirrors []Mirror
	Auto    bool
}

// AutoWord asks for the candidates to be probed and ranked: "auto" alone
// probes the catalogue, "auto:LIST" the mirrors of LIST (names or
// addresses, as --mirror takes them).
const AutoWord = "auto"

// ParseChoice parses a --mirror value: "auto", "auto:LIST", or an ordered
// LIST (ParseList).
func ParseChoice(s string) (Choice, error) {
	s = strings.TrimSpace(s)
	if s == AutoWord {
		return Choice{Mirrors: Catalogue(), Auto: true}, nil
	}
	if list, ok := strings.CutPrefix(s, AutoWord+":"); ok {
		ms, err := ParseList(list)
		if err != nil {
			return Choice{}, fmt.Errorf("auto:%s: %w", list, err)
		}
		return Choice{Mirrors: ms, Auto: true}, nil
	}
	ms, err := ParseList(s)
	return Choice{Mirrors: ms}, err
}

// Ranking is the candidates ranked by a probe, when it was made, and
// whether it was remembered rather than made now.
type Ranking struct {
	Probes []Probe
	At     time.Time
	Cached bool
	// StoreErr says why the ranking could not be remembered; the ranking
	// itself is good.
	StoreErr error
}

// RankOptions tune Rank.
type RankOptions struct {
	Registry *Registry
	// Timeout bounds each mirror's probe; 0 means DefaultProbeTimeout.
	Timeout time.Duration
	// Cache, when set, remembers rankings; Refresh probes anew even when it
	// holds a fresh one.
	Cache   *RankCache
	Refresh bool
}

// Rank ranks the candidates for the images (canonical names): the one
// remembered for the same candidates and images while it is fresh, else a
// new probe of each, which is then remembered.
func Rank(ctx context.Context, candidates []Mirror, images []string, opts RankOptions) Ranking {
	key := rankKey(candidates, images)
	if opts.Cache != nil && !opts.Refresh {
		if r, ok := opts.Cache.load(key); ok {
			return r
		}
	}
	r := Ranking{Probes: ProbeAll(ctx, opts.Registry, candidates, images, opts.Timeout), At: time.Now()}
	// A probe that no mirror answered says more about this host's network
	// at that moment (DNS not up yet, a proxy not set) than about the
	// mirrors: remembered, it would fail every --mirror auto for the hour
	// after the network is fixed.
	if opts.Cache != nil && ctx.Err() == nil && r.anyReachable() {
		r.At = opts.Cache.now()
		r.StoreErr = opts.Cache.store(key, r)
	}
	return r
}

// rankKey names a probe's question: the same mirrors (in any order) asked
// about the same images.
func rankKey(candidates []Mirror, images []string) string {
	var parts []string
	for _, m := range candidates {
		parts = append(parts, fmt.Sprintf("%s|%s|%s|%d", m.Name, m.Prefix, m.Hub, m.Layout))
	}
	slices.Sort(parts)
	imgs := slices.Sorted(slices.Values(images))
	return fmt.Sprintf("%x", sha256.Sum256([]byte(strings.Join(parts, "\n")+"\n\n"+strings.Join(imgs, "\n"))))
}

// DefaultRankTTL is how long a ranking is remembered: long enough that
// the commands of one sitting probe once, short enough that a mirror that
// fell behind or came back is noticed within the hour.
const DefaultRankTTL = time.Hour

// RankCache remembers rankings in a JSON file, keyed by the candidates and
// the images asked about.
type RankCache struct {
	Path string
	TTL  time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultRankCache is the user's cache: $XDG_CACHE_HOME/dk8s/mirrors.json,
// else ~/.cache/dk8s/mirrors.json, for an hour.
func DefaultRankCache() (*RankCache, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return nil, fmt.Errorf("finding where to remember the mirrors' ranking: %w", err)
	}
	return &RankCache{Path: filepath.Join(dir, "dk8s", "mirrors.json"), TTL: DefaultRankTTL}, nil
}

type cachedRanking struct {
	At     time.Time
	Probes []Probe
}

func (c *RankCache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// read returns the file's rankings; a missing or unreadable file is an
// empty cache: it only saves time.
func (c *RankCache) read() map[string]cachedRanking {
	all := map[string]cachedRanking{}
	data, err := os.ReadFile(c.Path)
	if err == nil {
		_ = json.Unmarshal(data, &all)
	}
	return all
}

func (c *RankCache) load(key string) (Ranking, bool) {
	e, ok := c.read()[key]
	if !ok || c.now().Sub(e.At) > c.TTL || c.now().Before(e.At) {
		return Ranking{}, false
	}
	return Ranking{Probes: e.Probes, At: e.At, Cached: true}, true
}

// store remembers r under key, dropping the rankings that have expired,
// and replaces the file whole so a reader never sees half of it.
func (c *RankCache) store(key string, r Ranking) error {
	all := c.read()
	for k, e := range all {
		if c.now().Sub(e.At) > c.TTL {
			delete(all, k)
		}
	}
	all[key] = cachedRanking{At: r.At, Probes: r.Probes}
	data, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.Path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.Path), ".mirrors-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), c.Path)
	}
	if err != nil {
		return fmt.Errorf("remembering the mirrors' ranking in %s: %w", c.Path, err)
	}
	return nil
}

func (r Ranking) anyReachable() bool {
	for _, p := range r.Probes {
		if p.Reachable {
			return true
		}
	}
	return false
}

// ErrNoMirrorAnswered says that no candidate of an auto choice answered.
var ErrNoMirrorAnswered = errors.New("no mirror answered")

// Order is the mirrors to pull through, best first: those that answered
// the probe. It fails, saying why each did not, when none did.
func (r Ranking) Order() ([]Mirror, error) {
	var ms []Mirror
	var why []string
	for _, p := range r.Probes {
		if p.Reachable {
			ms = append(ms, p.Mirror)
		} else {
			why = append(why, p.Mirror.Name+": "+p.Err)
		}
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("%w the probe: %s", ErrNoMirrorAnswered, strings.Join(why, "; "))
	}
	return ms, nil
}
