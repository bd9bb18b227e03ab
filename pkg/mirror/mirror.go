package mirror

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Layout says how a mirror names the images of the registries it serves.
type Layout int

const (
	// PathPreserving mirrors keep the upstream path below their prefix:
	// registry.k8s.io/coredns/coredns becomes PREFIX/coredns/coredns, and
	// docker.io/flannel/flannel PREFIX/flannel/flannel.
	PathPreserving Layout = iota
	// Flat mirrors put every image directly under their prefix, by the last
	// element of its path: registry.k8s.io/coredns/coredns becomes
	// PREFIX/coredns, and docker.io/flannel/flannel PREFIX/flannel.
	// Aliyun's google_containers is laid out so, which is why the coredns
	// path goes wrong in so many hand-written pull loops.
	Flat
)

func (l Layout) String() string {
	if l == Flat {
		return "flat"
	}
	return "path-preserving"
}

// Mirror serves the images of registry.k8s.io and, where Hub is set, of
// docker.io, each registry's under its own prefix, in one layout.
type Mirror struct {
	// Name is the catalogue name, or the prefix for a mirror given by
	// address.
	Name string
	// Prefix is where the mirror serves registry.k8s.io's images.
	Prefix string
	// Hub is where it serves docker.io's images: "" for a mirror not known
	// to serve them (an image of docker.io then falls back to the next
	// mirror).
	Hub    string
	Layout Layout
	// About is a line for humans: who runs it.
	About string
}

// The registries whose images the lock names and mirrors serve.
const (
	// Upstream is the Kubernetes project's registry, home of every image
	// of the lock but those below.
	Upstream = "registry.k8s.io"
	// DockerHub is Docker Hub's, home of flannel's image. Docker shows its
	// images by their short names (flannel/flannel:TAG).
	DockerHub = "docker.io"
)

var catalogue = []Mirror{
	// Aliyun's copy holds what Kubernetes's own tools pull; nothing says it
	// carries docker.io's images, so they fall back to the next mirror.
	{Name: "aliyun", Prefix: "registry.aliyuncs.com/google_containers", Layout: Flat, About: "Alibaba Cloud's public google_containers copy"},
	{Name: "aliyun-hangzhou", Prefix: "registry.cn-hangzhou.aliyuncs.com/google_containers", Layout: Flat, About: "the same copy, served from Hangzhou"},
	{Name: "daocloud", Prefix: "k8s.m.daocloud.io", Hub: "docker.m.daocloud.io", Layout: PathPreserving, About: "DaoCloud's mirrors of both; keep upstream digests"},
	{Name: "upstream", Prefix: Upstream, Hub: DockerHub, Layout: PathPreserving, About: "each image's own registry"},
}

// DaemonName is the name of the mirror Daemon returns, as pull's output
// shows it.
const DaemonName = "registry-mirrors"

// Daemon is the Docker daemon's own mirrors of Docker Hub (urls, its
// "registry-mirrors"): a pull of a docker.io name through the daemon goes
// to them first, which is how most hosts in China reach Docker Hub. It
// serves docker.io's images only, under their canonical names.
func Daemon(urls []string) Mirror {
	return Mirror{Name: DaemonName, Hub: DockerHub, Layout: PathPreserving,
		About: "the Docker daemon's registry-mirrors (" + strings.Join(urls, ", ") + "), for docker.io's images"}
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
// makes any address path-preserving: "harbor.local/k8s/...". It is taken to
// serve docker.io's images under the same prefix: where it does not, they
// are not found there and fall back to the next mirror.
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
	m := Mirror{Name: prefix, Prefix: prefix, Hub: prefix, Layout: Flat}
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

// ErrNotServed marks an image whose registry a mirror is not known to
// serve.
var ErrNotServed = errors.New("not known to serve")

// Ref maps a canonical image name (registry.k8s.io/PATH:TAG or
// docker.io/PATH:TAG) to its name on the mirror. For an image of a registry
// the mirror is not known to serve it returns an error wrapping
// ErrNotServed that says which mirrors do: never the name itself, which
// would send the pull to the unreachable upstream.
func (m Mirror) Ref(canonical string) (string, error) {
	registry, rest, _ := strings.Cut(canonical, "/")
	prefix := m.PrefixFor(registry)
	if prefix == "" {
		var serving []string
		for _, c := range catalogue {
			if c.PrefixFor(registry) != "" {
				serving = append(serving, c.Name)
			}
		}
		if len(serving) == 0 {
			return "", fmt.Errorf("%w %s images: dk8s knows mirrors of %s and %s only", ErrNotServed, registry, Upstream, DockerHub)
		}
		return "", fmt.Errorf("%w %s images (%s and mirrors given by address do)", ErrNotServed, registry, strings.Join(serving, ", "))
	}
	if m.Layout == Flat {
		rest = rest[strings.LastIndex(rest, "/")+1:]
	}
	return prefix + "/" + rest, nil
}

// PrefixFor returns where m serves the images of registry, or "" when it is
// not known to serve them.
func (m Mirror) PrefixFor(registry string) string {
	switch registry {
	case Upstream:
		return m.Prefix
	case DockerHub:
		return m.Hub
	}
	return ""
}

func (m Mirror) String() string { return m.Name }
