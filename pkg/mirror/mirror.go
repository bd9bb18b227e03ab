package mirror

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Layout says how a mirror names the images of registry.k8s.io.
type Layout int

const (
	// PathPreserving mirrors keep the upstream path below their prefix:
	// registry.k8s.io/coredns/coredns becomes PREFIX/coredns/coredns.
	PathPreserving Layout = iota
	// Flat mirrors put every image directly under their prefix, by the last
	// element of its path: registry.k8s.io/coredns/coredns becomes
	// PREFIX/coredns. Aliyun's google_containers is laid out so, which is
	// why the coredns path goes wrong in so many hand-written pull loops.
	Flat
)

func (l Layout) String() string {
	if l == Flat {
		return "flat"
	}
	return "path-preserving"
}

// Mirror is a registry prefix that serves registry.k8s.io's images.
type Mirror struct {
	// Name is the catalogue name, or the prefix for a mirror given by
	// address.
	Name   string
	Prefix string
	Layout Layout
	// About is a line for humans: who runs it.
	About string
}

// Upstream is the canonical registry every image name in the lock uses.
const Upstream = "registry.k8s.io"

var catalogue = []Mirror{
	{Name: "aliyun", Prefix: "registry.aliyuncs.com/google_containers", Layout: Flat, About: "Alibaba Cloud's public google_containers copy"},
	{Name: "aliyun-hangzhou", Prefix: "registry.cn-hangzhou.aliyuncs.com/google_containers", Layout: Flat, About: "the same copy, served from Hangzhou"},
	{Name: "daocloud", Prefix: "k8s.m.daocloud.io", Layout: PathPreserving, About: "DaoCloud's registry.k8s.io mirror; keeps upstream digests"},
	{Name: "upstream", Prefix: Upstream, Layout: PathPreserving, About: "the Kubernetes project's own registry"},
}

// Catalogue returns the named mirrors dk8s knows.
func Catalogue() []Mirror {
	return append([]Mirror(nil), catalogue...)
}

// Names returns the catalogue's names, sorted.
func Names() []string {
	var names []string
	for _, m := range catalogue {
		names = append(names, m.Name)
	}
	sort.Strings(names)
	return names
}

var addressRE = regexp.MustCompile(`^([a-zA-Z0-9.-]+|\[[0-9a-fA-F:]+\])(:[0-9]+)?(/[a-z0-9._-]+)*$`)

// Parse turns one --mirror word into a Mirror: a catalogue name, or
// HOST[:PORT][/PATH]. A mirror given by address is flat when it has a path
// (the common re-hosting of google_containers) and path-preserving when it is
// a bare host (a pull-through cache of registry.k8s.io); a trailing "/..."
// makes any address path-preserving: "harbor.local/k8s/...".
func Parse(word string) (Mirror, error) {
	word = strings.TrimSpace(word)
	for _, m := range catalogue {
		if m.Name == word {
			return m, nil
		}
	}
	prefix, preserve := strings.CutSuffix(word, "/...")
	prefix = strings.TrimSuffix(prefix, "/")
	if !strings.ContainsAny(prefix, ".:/") || !addressRE.MatchString(prefix) {
		return Mirror{}, fmt.Errorf("unknown mirror %q: use one of %s, or a registry address HOST[:PORT][/PATH] (add /... to keep upstream paths)", word, strings.Join(Names(), ", "))
	}
	m := Mirror{Name: prefix, Prefix: prefix, Layout: Flat}
	if preserve || !strings.Contains(prefix, "/") {
		m.Layout = PathPreserving
	}
	return m, nil
}

// ParseList parses a comma-separated, ordered list of mirrors.
func ParseList(list string) ([]Mirror, error) {
	var ms []Mirror
	for _, word := range strings.Split(list, ",") {
		if strings.TrimSpace(word) == "" {
			continue
		}
		m, err := Parse(word)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no mirror given: use one or more of %s, or a registry address", strings.Join(Names(), ", "))
	}
	return ms, nil
}

// Ref maps a canonical image name (registry.k8s.io/PATH:TAG) to its name on
// the mirror. Names outside registry.k8s.io are returned as they are: the
// mirror serves only registry.k8s.io.
func (m Mirror) Ref(canonical string) string {
	rest, ok := strings.CutPrefix(canonical, Upstream+"/")
	if !ok {
		return canonical
	}
	if m.Layout == Flat {
		rest = rest[strings.LastIndex(rest, "/")+1:]
	}
	return m.Prefix + "/" + rest
}

// Host is the registry host (and port) of the mirror.
func (m Mirror) Host() string {
	host, _, _ := strings.Cut(m.Prefix, "/")
	return host
}

func (m Mirror) String() string { return m.Name }
