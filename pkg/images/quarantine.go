package images

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

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
	repo  string            // dk8s-load.local/<random>
	names map[string]string // the archive's name -> its quarantine name
}

func newQuarantine() (*quarantine, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	// Random, so that two loads at once never share a name.
	return &quarantine{repo: quarantineHost + "/" + hex.EncodeToString(b), names: map[string]string{}}, nil
}

// rename returns the quarantine name for one the archive gives.
func (q *quarantine) rename(name string) string {
	if n, ok := q.names[name]; ok {
		return n
	}
	n := fmt.Sprintf("%s:%d", q.repo, len(q.names)+1)
	q.names[name] = n
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
	for _, n := range q.names {
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

func (q *quarantine) rewriteEntry(tr *tar.Reader, tw *tar.Writer, hdr *tar.Header, rewrite func([]byte) ([]byte, error)) error {
	if hdr.Typeflag != tar.TypeReg {
		return fmt.Errorf("the archive's %s is not a plain file: 'docker save' writes no such archive", hdr.Name)
	}
	data, err := readEntry(tr, hdr, maxIndexSize)
	if err != nil {
		return err
	}
	if data, err = rewrite(data); err != nil {
		return fmt.Errorf("the archive's %s: %w", hdr.Name, err)
	}
	out := *hdr
	out.Size = int64(len(data))
	if err := tw.WriteHeader(&out); err != nil {
		return err
	}
	_, err = tw.Write(data)
	return err
}

// rewriteManifest gives every image of manifest.json quarantine names in
// place of its RepoTags.
func (q *quarantine) rewriteManifest(data []byte) ([]byte, error) {
	var entries []map[string]json.RawMessage
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, err
	}
	for _, e := range entries {
		var renamed []string
		// Docker decodes keys case-insensitively, so "repotags" names
		// images as well as "RepoTags" does.
		for _, key := range foldedKeys(e, "RepoTags") {
			var tags []string
			if err := json.Unmarshal(e[key], &tags); err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
			for _, t := range tags {
				renamed = append(renamed, q.rename(t))
			}
			delete(e, key)
		}
		raw, err := json.Marshal(renamed)
		if err != nil {
			return nil, err
		}
		e["RepoTags"] = raw
	}
	return json.Marshal(entries)
}

// rewriteIndex renames the images an OCI index.json names, which is where
// Docker's containerd store takes names from.
func (q *quarantine) rewriteIndex(data []byte) ([]byte, error) {
	var index map[string]json.RawMessage
	if err := json.Unmarshal(data, &index); err != nil {
		return nil, err
	}
	for _, key := range foldedKeys(index, "manifests") {
		var descs []map[string]json.RawMessage
		if err := json.Unmarshal(index[key], &descs); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		for _, d := range descs {
			for _, ak := range foldedKeys(d, "annotations") {
				var ann map[string]string
				if err := json.Unmarshal(d[ak], &ann); err != nil {
					return nil, fmt.Errorf("annotations: %w", err)
				}
				q.renameAnnotations(ann)
				d[ak], _ = json.Marshal(ann)
			}
		}
		index[key], _ = json.Marshal(descs)
	}
	return json.Marshal(index)
}

func (q *quarantine) renameAnnotations(ann map[string]string) {
	if name, ok := ann[annotationContainerdName]; ok {
		qn := q.rename(name)
		ann[annotationContainerdName] = qn
		if _, ok := ann[annotationOCIRefName]; ok {
			ann[annotationOCIRefName] = qn[strings.LastIndex(qn, ":")+1:]
		}
		return
	}
	if ref, ok := ann[annotationOCIRefName]; ok {
		if strings.Contains(ref, "/") {
			ann[annotationOCIRefName] = q.rename(ref)
		} else {
			// A bare tag names nothing Load could check the content of.
			delete(ann, annotationOCIRefName)
		}
	}
}

// foldedKeys returns the keys of m equal to key under case folding.
func foldedKeys(m map[string]json.RawMessage, key string) []string {
	var out []string
	for k := range m {
		if strings.EqualFold(k, key) {
			out = append(out, k)
		}
	}
	return out
}

// throughLink tells whether a parent directory of name is a link entry.
func throughLink(name string, links map[string]bool) bool {
	for dir := path.Dir(name); dir != "/"; dir = path.Dir(dir) {
		if links[dir] {
			return true
		}
	}
	return false
}

// readEntry reads the tar entry hdr into memory, refusing one larger than
// limit.
func readEntry(r io.Reader, hdr *tar.Header, limit int64) ([]byte, error) {
	if hdr.Size > limit {
		return nil, fmt.Errorf("the archive's %s is %d bytes, more than the %d dk8s reads: 'dk8s save' writes no such archive", hdr.Name, hdr.Size, limit)
	}
	data, err := io.ReadAll(io.LimitReader(r, limit))
	if err != nil {
		return nil, fmt.Errorf("reading the archive's %s: %w", hdr.Name, err)
	}
	return data, nil
}
