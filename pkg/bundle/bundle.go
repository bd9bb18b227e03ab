// Package bundle reads and writes dk8s's air-gap bundle: one tar file that
// carries everything a machine with Docker and nothing else needs to start
// a node of one Kubernetes release, for one platform: the image set (an
// archive 'dk8s save' writes), kubelet and kubectl, and the dk8s binary
// that wrote it, of which the node agent's image is made.
//
// The bundle opens with a manifest that lists each part with its size and
// sha256. The manifest guards against a bundle cut short or damaged on its
// way; it proves nothing about where the parts came from, since whoever can
// alter a part can alter the manifest too. The receiving dk8s checks each
// part against what it trusts itself (its lock's digests and sums), not
// against the manifest.
package bundle

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ManifestName is the bundle's first entry.
const ManifestName = "dk8s-bundle.yaml"

// The parts a bundle carries, by their names in it.
const (
	Images  = "images.tar" // an archive 'dk8s save' writes
	Kubelet = "bin/kubelet"
	Kubectl = "bin/kubectl"
	DK8s    = "bin/dk8s" // the dk8s that wrote the bundle; 'tar -xf BUNDLE bin/dk8s' takes it out
)

// Parts are every part a bundle has, in the order it carries them.
var Parts = []string{DK8s, Kubelet, Kubectl, Images}

const (
	apiVersion = "dk8s.io/v1alpha1"
	kind       = "Bundle"
	// maxManifest bounds the manifest read into memory.
	maxManifest = 64 << 10
)

// Manifest is what a bundle says it holds.
type Manifest struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	// Kubernetes is the release of the images and binaries.
	Kubernetes string `yaml:"kubernetes"`
	// Platform is the "os/arch" they are for.
	Platform string `yaml:"platform"`
	// DK8s is the version of the dk8s that wrote the bundle.
	DK8s  string `yaml:"dk8s"`
	Parts []Part `yaml:"parts"`
}

// Part is one file of the bundle.
type Part struct {
	Name   string `yaml:"name"`
	Size   int64  `yaml:"size"`
	SHA256 string `yaml:"sha256"`
}

// Part returns the manifest's entry for name.
func (m *Manifest) Part(name string) (Part, bool) {
	for _, p := range m.Parts {
		if p.Name == name {
			return p, true
		}
	}
	return Part{}, false
}

// Write writes a bundle to w: the manifest m (its Parts filled in here),
// then each of Parts, read from files[name]. Each file is read twice, once
// for its sum and once into the bundle, and must not change in between.
func Write(w io.Writer, m Manifest, files map[string]string) error {
	m.APIVersion, m.Kind, m.Parts = apiVersion, kind, nil
	for _, name := range Parts {
		path, ok := files[name]
		if !ok {
			return fmt.Errorf("the bundle needs its part %s", name)
		}
		sum, size, err := FileSum(path)
		if err != nil {
			return err
		}
		m.Parts = append(m.Parts, Part{Name: name, Size: size, SHA256: sum})
	}
	data, err := yaml.Marshal(&m)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	now := time.Now()
	if err := tw.WriteHeader(&tar.Header{Name: ManifestName, Mode: 0o644, Size: int64(len(data)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	for _, p := range m.Parts {
		if err := writePart(tw, p, files[p.Name], now); err != nil {
			return err
		}
	}
	return tw.Close()
}

func writePart(tw *tar.Writer, p Part, path string, now time.Time) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	mode := int64(0o644)
	if strings.HasPrefix(p.Name, "bin/") {
		mode = 0o755
	}
	if err := tw.WriteHeader(&tar.Header{Name: p.Name, Mode: mode, Size: p.Size, ModTime: now, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	h := sha256.New()
	if n, err := io.Copy(tw, io.TeeReader(io.LimitReader(f, p.Size), h)); err != nil {
		return fmt.Errorf("writing %s into the bundle: %w", p.Name, err)
	} else if n != p.Size || hex.EncodeToString(h.Sum(nil)) != p.SHA256 {
		return fmt.Errorf("%s changed while the bundle was written", path)
	}
	return nil
}

// FileSum returns the sha256 (hex) and size of the file at path.
func FileSum(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// ErrDamaged marks a bundle whose parts are not those its manifest lists:
// cut short, damaged, or not made by 'dk8s save --bundle'.
var ErrDamaged = errors.New("the bundle is damaged or was not written by 'dk8s save --bundle'")

// Unpack reads a bundle from r into dir (which must exist and be empty):
// each part lands at dir/NAME, and only once every part is there with the
// size and sha256 the manifest gives does Unpack return the manifest.
// Entries other than the known parts, twice the same part, or a part
// missing are refused with an error wrapping ErrDamaged. Nothing is written
// outside dir; the caller removes dir.
func Unpack(r io.Reader, dir string) (*Manifest, error) {
	tr := tar.NewReader(r)
	m, err := readManifest(tr)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: reading it: %v", ErrDamaged, err)
		}
		p, ok := m.Part(hdr.Name)
		if !ok || hdr.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("%w: it holds %q, which is no part its manifest lists", ErrDamaged, hdr.Name)
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("%w: it holds %s twice", ErrDamaged, p.Name)
		}
		seen[p.Name] = true
		if err := unpackPart(tr, p, filepath.Join(dir, filepath.FromSlash(p.Name))); err != nil {
			return nil, err
		}
	}
	for _, name := range Parts {
		if !seen[name] {
			return nil, fmt.Errorf("%w: it has no %s", ErrDamaged, name)
		}
	}
	return m, nil
}

func readManifest(tr *tar.Reader) (*Manifest, error) {
	hdr, err := tr.Next()
	if err != nil || hdr.Name != ManifestName || hdr.Typeflag != tar.TypeReg {
		return nil, fmt.Errorf("not a dk8s bundle: its first entry is not %s (make one with 'dk8s save --bundle')", ManifestName)
	}
	if hdr.Size > maxManifest {
		return nil, fmt.Errorf("%w: its manifest is %d bytes", ErrDamaged, hdr.Size)
	}
	data, err := io.ReadAll(tr)
	if err != nil {
		return nil, fmt.Errorf("%w: reading its manifest: %v", ErrDamaged, err)
	}
	var m Manifest
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: its manifest: %v", ErrDamaged, err)
	}
	if m.APIVersion != apiVersion || m.Kind != kind {
		return nil, fmt.Errorf("not a dk8s bundle this dk8s reads: its manifest is %s %s, want %s %s", m.APIVersion, m.Kind, apiVersion, kind)
	}
	if m.Kubernetes == "" || m.Platform == "" {
		return nil, fmt.Errorf("%w: its manifest names no Kubernetes release or platform", ErrDamaged)
	}
	var names []string
	for _, p := range m.Parts {
		if !slices.Contains(Parts, p.Name) || slices.Contains(names, p.Name) {
			return nil, fmt.Errorf("%w: its manifest lists %q, which is no part of a bundle, or lists it twice", ErrDamaged, p.Name)
		}
		names = append(names, p.Name)
	}
	return &m, nil
}

// unpackPart writes one part to path, and checks it against p.
func unpackPart(tr *tar.Reader, p Part, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err != nil {
		return err
	}
	h := sha256.New()
	// One byte past the size the manifest gives tells a longer part.
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(tr, p.Size+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return fmt.Errorf("unpacking %s: %w", p.Name, err)
	case n != p.Size:
		return fmt.Errorf("%w: its %s has %d bytes, its manifest says %d", ErrDamaged, p.Name, n, p.Size)
	case hex.EncodeToString(h.Sum(nil)) != p.SHA256:
		return fmt.Errorf("%w: its %s does not have the sha256 its manifest gives", ErrDamaged, p.Name)
	}
	return nil
}
