package images

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

const (
	lockAPIVersion = "dk8s.io/v1alpha1"
	lockKind       = "ImageLock"
)

// Lock is the parsed images.lock: what a cluster runs, per Kubernetes
// version, and how to recognise each image wherever it was pulled from.
type Lock struct {
	APIVersion string    `yaml:"apiVersion"`
	Kind       string    `yaml:"kind"`
	Default    string    `yaml:"default"`
	Releases   []Release `yaml:"releases"`
}

// Release is the image set (and host binaries) of one Kubernetes version.
type Release struct {
	Kubernetes string   `yaml:"kubernetes"`
	Images     []Image  `yaml:"images"`
	Binaries   []Binary `yaml:"binaries,omitempty"`
}

// Image is one image of a release. Name is the canonical reference
// (registry.k8s.io/...); Aliases are further names it is tagged with, such as
// the legacy k8s.gcr.io ones that old manifests still use.
type Image struct {
	Component string   `yaml:"component"`
	Name      string   `yaml:"name"`
	Aliases   []string `yaml:"aliases,flow,omitempty"`
	// Digest is what Name resolves to upstream: for a multi-platform image,
	// the index digest.
	Digest string `yaml:"digest,omitempty"`
	// Platforms holds, per "os/arch", the digests that identify the image for
	// that platform even where a mirror re-serializes the index.
	Platforms map[string]PlatformDigests `yaml:"platforms,omitempty"`
}

// PlatformDigests identify one platform's image.
type PlatformDigests struct {
	Manifest string `yaml:"manifest,omitempty"`
	Config   string `yaml:"config,omitempty"`
}

// Binary is a host binary (kubelet) fetched over HTTP and pinned by sha256
// per "os/arch". URL may hold {os} and {arch}.
type Binary struct {
	Name   string            `yaml:"name"`
	URL    string            `yaml:"url"`
	SHA256 map[string]string `yaml:"sha256,omitempty"`
}

var (
	digestRE   = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	platformRE = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9]+(/[a-z0-9]+)?$`)
	versionRE  = regexp.MustCompile(`^v1\.[0-9]+\.[0-9]+$`)
	sha256RE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ReadLock reads and validates the lock at path.
func ReadLock(path string) (*Lock, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading image lock: %w", err)
	}
	l, err := ParseLock(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

// ParseLock parses and validates a lock. Unknown fields are errors, so a
// typo never silently drops a digest.
func ParseLock(data []byte) (*Lock, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var l Lock
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("malformed image lock: %w", err)
	}
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("invalid image lock: %w", err)
	}
	return &l, nil
}

// Validate checks that the lock is complete and every digest well formed.
func (l *Lock) Validate() error {
	if l.APIVersion != lockAPIVersion || l.Kind != lockKind {
		return fmt.Errorf("want apiVersion %q and kind %q, got %q and %q", lockAPIVersion, lockKind, l.APIVersion, l.Kind)
	}
	if len(l.Releases) == 0 {
		return errors.New("no releases")
	}
	seen := map[string]bool{}
	for _, r := range l.Releases {
		if !versionRE.MatchString(r.Kubernetes) {
			return fmt.Errorf("release %q: kubernetes must look like v1.37.2", r.Kubernetes)
		}
		if seen[r.Kubernetes] {
			return fmt.Errorf("release %s is listed twice", r.Kubernetes)
		}
		seen[r.Kubernetes] = true
		if err := r.validate(); err != nil {
			return fmt.Errorf("release %s: %w", r.Kubernetes, err)
		}
	}
	if !seen[l.Default] {
		return fmt.Errorf("default %q is not one of the releases (%s)", l.Default, strings.Join(l.Versions(), ", "))
	}
	return nil
}

func (r Release) validate() error {
	if len(r.Images) == 0 {
		return errors.New("no images")
	}
	components := map[string]bool{}
	for _, img := range r.Images {
		if img.Component == "" {
			return fmt.Errorf("image %q has no component", img.Name)
		}
		if components[img.Component] {
			return fmt.Errorf("component %s is listed twice", img.Component)
		}
		components[img.Component] = true
		if err := img.validate(); err != nil {
			return fmt.Errorf("%s: %w", img.Component, err)
		}
	}
	for _, b := range r.Binaries {
		for p, sum := range b.SHA256 {
			if !platformRE.MatchString(p) {
				return fmt.Errorf("binary %s: platform %q must look like linux/amd64", b.Name, p)
			}
			if sum != "" && !sha256RE.MatchString(sum) {
				return fmt.Errorf("binary %s %s: sha256 %q is not 64 hex digits", b.Name, p, sum)
			}
		}
	}
	return nil
}

func (img Image) validate() error {
	for i, name := range append([]string{img.Name}, img.Aliases...) {
		if err := checkName(name); err != nil {
			if i > 0 {
				err = fmt.Errorf("alias: %w", err)
			}
			return err
		}
	}
	if img.Digest != "" && !digestRE.MatchString(img.Digest) {
		return fmt.Errorf("digest %q is not sha256:<64 hex digits>", img.Digest)
	}
	for p, d := range img.Platforms {
		if !platformRE.MatchString(p) {
			return fmt.Errorf("platform %q must look like linux/amd64", p)
		}
		for _, v := range []string{d.Manifest, d.Config} {
			if v != "" && !digestRE.MatchString(v) {
				return fmt.Errorf("%s: digest %q is not sha256:<64 hex digits>", p, v)
			}
		}
	}
	return nil
}

// Versions lists the lock's Kubernetes versions, newest first.
func (l *Lock) Versions() []string {
	var vs []string
	for _, r := range l.Releases {
		vs = append(vs, r.Kubernetes)
	}
	sort.Slice(vs, func(i, j int) bool { return versionLess(vs[j], vs[i]) })
	return vs
}

// Release returns the release of version, or the default one for "".
func (l *Lock) Release(version string) (*Release, error) {
	if version == "" {
		version = l.Default
	}
	if !strings.HasPrefix(version, "v") {
		version = "v" + version
	}
	for i := range l.Releases {
		if l.Releases[i].Kubernetes == version {
			return &l.Releases[i], nil
		}
	}
	return nil, fmt.Errorf("kubernetes %s is not in the image lock; it has %s (add one with 'dk8s images lock')", version, strings.Join(l.Versions(), ", "))
}

// Image returns the release's image for component.
func (r *Release) Image(component string) (*Image, bool) {
	for i := range r.Images {
		if r.Images[i].Component == component {
			return &r.Images[i], true
		}
	}
	return nil, false
}

// Known tells whether the lock holds any digest for img: an image without
// one can be pulled but never verified.
func (img Image) Known() bool {
	if img.Digest != "" {
		return true
	}
	for _, d := range img.Platforms {
		if d.Manifest != "" || d.Config != "" {
			return true
		}
	}
	return false
}

// Marshal renders the lock as YAML behind a header comment.
func (l *Lock) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("# images.lock: every image a dk8s cluster runs, per Kubernetes version.\n")
	buf.WriteString("# Written by 'dk8s images lock'; empty digests are reported as unverified.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(l); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// SplitRef splits "host/path:tag" into repository and tag. Every name in
// the lock must carry an explicit tag: an implicit "latest" is never what a
// cluster should run.
func SplitRef(ref string) (repo, tag string, err error) {
	slash := strings.LastIndex(ref, "/")
	colon := strings.LastIndex(ref, ":")
	if strings.Contains(ref, "@") || colon < slash || colon == len(ref)-1 || slash <= 0 {
		return "", "", fmt.Errorf("image name %q must be HOST/PATH:TAG", ref)
	}
	return ref[:colon], ref[colon+1:], nil
}

// checkName refuses a name the lock cannot hold: one without a tag, or a
// short one. Docker takes flannel/flannel:TAG and its full name for one
// name, but a mirror maps only the full one, and as an alias the short name
// would add nothing.
func checkName(name string) error {
	if _, _, err := SplitRef(name); err != nil {
		return err
	}
	if full := FullName(name); full != name {
		return fmt.Errorf("image name %q is Docker's short form: write it in full, %s", name, full)
	}
	return nil
}

// FullName is the name Docker means by ref: one whose first element is no
// registry host (it has no dot or port, is not localhost, and is lower
// case) is Docker Hub's, and a name of one element is in its library. So
// flannel/flannel:TAG is docker.io/flannel/flannel:TAG, the name the lock
// uses, while Docker shows the short one.
func FullName(ref string) string {
	first, _, ok := strings.Cut(ref, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first) {
		return ref
	}
	if !ok {
		ref = "library/" + ref
	}
	return "docker.io/" + ref
}

func versionLess(a, b string) bool {
	var x, y [3]int
	fmt.Sscanf(a, "v%d.%d.%d", &x[0], &x[1], &x[2])
	fmt.Sscanf(b, "v%d.%d.%d", &y[0], &y[1], &y[2])
	for i := range x {
		if x[i] != y[i] {
			return x[i] < y[i]
		}
	}
	return false
}

// Only is the release cut down to the images of the named components (a
// worker needs the node's, not the control plane's).
func (r *Release) Only(components ...string) *Release {
	out := &Release{Kubernetes: r.Kubernetes}
	for _, img := range r.Images {
		if slices.Contains(components, img.Component) {
			out.Images = append(out.Images, img)
		}
	}
	return out
}

// AddOns are the components a dk8s cluster runs beside Kubernetes's own
// release: flannel (the pod network). It is the same for every release and
// no digest is published for it where this lock's pins come from, so it is
// reported on its own and does not decide whether a release is verified.
// (The node agent's image needs no base: it is the dk8s binary alone.)
var AddOns = []string{"flannel"}

// PinnedPlatforms are the platforms a release must pin its host binaries
// for to count as verified: the two dk8s is built for.
var PinnedPlatforms = []string{"linux/amd64", "linux/arm64"}

// Unpinned lists what the lock leaves unverifiable of Kubernetes's own
// release: each of its images without a digest, and each host binary without
// a sha256 for one of PinnedPlatforms (as "kubelet linux/arm64"). Empty means
// every image and binary of the release is checked before it is used.
func (r *Release) Unpinned() []string {
	var out []string
	for _, img := range r.Images {
		if !slices.Contains(AddOns, img.Component) && !img.Known() {
			out = append(out, img.Component)
		}
	}
	for _, b := range r.Binaries {
		for _, p := range PinnedPlatforms {
			if b.SHA256[p] == "" {
				out = append(out, b.Name+" "+p)
			}
		}
	}
	return out
}

// UnpinnedAddOns lists the add-on images (AddOns) the lock has no digest for.
func (r *Release) UnpinnedAddOns() []string {
	var out []string
	for _, img := range r.Images {
		if slices.Contains(AddOns, img.Component) && !img.Known() {
			out = append(out, img.Component)
		}
	}
	return out
}

// Verified tells whether every image and host binary of the release is
// pinned (see Unpinned), and it has at least a kubelet to pin.
func (r *Release) Verified() bool {
	return len(r.Binaries) > 0 && len(r.Unpinned()) == 0
}

// NewestVerified is the newest release of the lock that is Verified: what
// the lock's default should be. It is "" when none is.
func (l *Lock) NewestVerified() string {
	for _, v := range l.Versions() {
		if r, _ := l.Release(v); r.Verified() {
			return v
		}
	}
	return ""
}

// Pinning says in a few words how far the lock vouches for rel: "verified"
// or "unverified: ...", naming what has no pin.
func (r *Release) Pinning() string {
	un := r.Unpinned()
	switch {
	case len(r.Binaries) == 0:
		return "unverified: no host binaries pinned"
	case len(un) == 0:
		return "verified"
	case len(un) > 4:
		return fmt.Sprintf("unverified: %d entries unpinned (%s, ...)", len(un), strings.Join(un[:3], ", "))
	}
	return "unverified: " + strings.Join(un, ", ") + " unpinned"
}
