package images

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"sort"

	"github.com/dk8s/dk8s/pkg/containers"
)

// quarantineHost is the registry host of the names Load gives images while
// it checks them. ".local" names no registry anyone pulls from.
const quarantineHost = "dk8s-load.local"

// maxIndexSize bounds manifest.json and index.json, which Load reads into
// memory to rewrite; a docker save archive's are a few KiB.
const maxIndexSize = 4 << 20

// The annotations by which an OCI index.json names its images when
// containerd imports it.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationOCIRefName     = "org.opencontainers.image.ref.name"
)

// errStoppedReading closes the pipe to the daemon once LoadImages returns.
var errStoppedReading = errors.New("Docker stopped reading the archive")

// quarantine renames the images of an archive on their way to the daemon,
// so that every image loads under a name of its own making and no name the
// archive gives reaches the store.
type quarantine struct {
	repo     string            // dk8s-load.local/<random>
	names    map[string]string // the archive's name, in full -> its quarantine name
	nameless []string          // the names given to images the archive names not
}

func newQuarantine() (*quarantine, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	// Random, so that two loads at once never share a name.
	return &quarantine{repo: quarantineHost + "/" + hex.EncodeToString(b), names: map[string]string{}}, nil
}

// rename returns the quarantine name for one the archive gives. Names are
// kept in full, as the lock has them: Docker's classic store writes a
// docker.io image's short name (flannel/flannel:TAG) into the archive.
func (q *quarantine) rename(name string) string {
	name = FullName(name)
	if n, ok := q.names[name]; ok {
		return n
	}
	n := fmt.Sprintf("%s:%d", q.repo, len(q.names)+1)
	q.names[name] = n
	return n
}

// unnamed returns a quarantine name for an image the archive gives no
// name: none of the release's, so Load never names its content, but one
// that clear removes.
func (q *quarantine) unnamed() string {
	n := fmt.Sprintf("%s:unnamed-%d", q.repo, len(q.nameless)+1)
	q.nameless = append(q.nameless, n)
	return n
}

// nameOf returns the quarantine name of img's canonical name or, failing
// that, of the first alias the archive gave.
func (q *quarantine) nameOf(img Image) (string, bool) {
	for _, name := range append([]string{img.Name}, img.Aliases...) {
		if n, ok := q.names[name]; ok {
			return n, true
		}
	}
	return "", false
}

// outside lists the archive's names that are no image of rel, sorted.
func (q *quarantine) outside(rel *Release) []string {
	known := map[string]bool{}
	for _, img := range rel.Images {
		known[img.Name] = true
		for _, a := range img.Aliases {
			known[a] = true
		}
	}
	var out []string
	for name := range q.names {
		if !known[name] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// clear removes every quarantine name, by name: content left with no name
// goes with it.
func (q *quarantine) clear(ctx context.Context, engine containers.Engine) error {
	var errs []error
	for _, n := range append(slices.Collect(maps.Values(q.names)), q.nameless...) {
		if err := engine.UntagImage(ctx, n); err != nil && !containers.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("removing the quarantine name %s: %w (remove it with 'docker rmi %s')", n, err, n))
		}
	}
	return errors.Join(errs...)
}

// load streams the rest of the archive to the daemon, renamed.
func (q *quarantine) load(ctx context.Context, engine containers.Engine, tr *tar.Reader) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := q.copy(tr, tar.NewWriter(pw))
		// An error here cuts the stream short, so the daemon loads nothing
		// of an archive that was refused half way.
		pw.CloseWithError(err)
		done <- err
	}()
	loadErr := engine.LoadImages(ctx, pr)
	pr.CloseWithError(errStoppedReading)
	streamErr := <-done
	switch {
	case streamErr != nil && !errors.Is(streamErr, errStoppedReading):
		return streamErr
	case loadErr != nil:
		return fmt.Errorf("loading the archive into Docker: %w", loadErr)
	case streamErr != nil:
		return fmt.Errorf("loading the archive into Docker: %w before its end", streamErr)
	}
	return nil
}

// copy copies the archive's entries, rewriting the ones that name images.
// Names are compared as Docker's loader resolves them once it has unpacked
// the archive: "./manifest.json" and "/manifest.json" are manifest.json.
func (q *quarantine) copy(tr *tar.Reader, tw *tar.Writer) error {
	links := map[string]bool{}
	sawManifest := false
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the archive: %w", err)
		}
		name := path.Clean("/" + hdr.Name)
		if throughLink(name, links) {
			// Unpacked, it would land wherever the link points: in
			// manifest.json, say, past the rewriting.
			return fmt.Errorf("the archive's entry %s lies under a link: 'docker save' writes no such archive", hdr.Name)
		}
		if hdr.Typeflag == tar.TypeSymlink || hdr.Typeflag == tar.TypeLink {
			links[name] = true
		}
		var rewrite func([]byte) ([]byte, error)
		switch name {
		case "/repositories":
			// The legacy names, which Docker reads only where manifest.json
			// is missing: dropped, so no name gets past the rewriting.
			continue
		case "/manifest.json":
			rewrite, sawManifest = q.rewriteManifest, true
		case "/index.json":
			rewrite = q.rewriteIndex
		}
		if rewrite == nil {
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if _, err := io.Copy(tw, tr); err != nil {
				return err
			}
			continue
		}
		if err := q.rewriteEntry(tr, tw, hdr, rewrite); err != nil {
			return err
		}
	}
	if !sawManifest {
		return errors.New("the archive has no manifest.json: 'dk8s save' writes one, so it was not made by 'dk8s save'")
	}
	return tw.Close()
}
