package images

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
)

// The format of a `docker save` archive as Load reads it: manifest.json and
// index.json rewritten to quarantine names, every entry read into memory
// bounded, no entry reached through a link.

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
		if len(renamed) == 0 {
			// Loaded with no name, it would stay in the store, nameless,
			// whatever Load made of the rest: it gets a quarantine name
			// too, which goes with the others.
			renamed = append(renamed, q.unnamed())
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
			keys := foldedKeys(d, "annotations")
			var named bool
			for _, ak := range keys {
				var ann map[string]string
				if err := json.Unmarshal(d[ak], &ann); err != nil {
					return nil, fmt.Errorf("annotations: %w", err)
				}
				named = q.renameAnnotations(ann) || named
				d[ak], _ = json.Marshal(ann)
			}
			if !named {
				// As in manifest.json: nothing loads without a name
				// that Load removes.
				for _, ak := range keys {
					delete(d, ak)
				}
				d["annotations"], _ = json.Marshal(map[string]string{annotationContainerdName: q.unnamed()})
			}
		}
		index[key], _ = json.Marshal(descs)
	}
	return json.Marshal(index)
}

// renameAnnotations renames the image that ann names, and tells whether
// they name one.
func (q *quarantine) renameAnnotations(ann map[string]string) bool {
	if name, ok := ann[annotationContainerdName]; ok {
		qn := q.rename(name)
		ann[annotationContainerdName] = qn
		if _, ok := ann[annotationOCIRefName]; ok {
			ann[annotationOCIRefName] = qn[strings.LastIndex(qn, ":")+1:]
		}
		return true
	}
	if ref, ok := ann[annotationOCIRefName]; ok {
		if strings.Contains(ref, "/") {
			ann[annotationOCIRefName] = q.rename(ref)
			return true
		}
		// A bare tag names nothing Load could check the content of.
		delete(ann, annotationOCIRefName)
	}
	return false
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
