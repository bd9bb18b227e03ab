// Command mkindex makes a harness image look like upstream's on the
// registry: the single-platform image `docker push` left at
// REGISTRY/REPO:TAG becomes the linux/amd64 entry of a multi-platform OCI
// index, beside a linux/arm64 entry and a BuildKit-style attestation
// manifest (platform unknown/unknown) for the amd64 image, as flannel's
// images carry; the tag then names the index.
//
//	mkindex 127.0.0.1:5001 google_containers/coredns v1.14.6
//
// The arm64 entry is a stand-in: this machine builds for amd64 only, so
// its one layer holds a note saying so, not the component. A client that
// ran it on amd64 would fail at once rather than pass unnoticed.
//
// Run again on a tag that already names an index, it does nothing.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"
)

const (
	ociIndex     = "application/vnd.oci.image.index.v1+json"
	ociManifest  = "application/vnd.oci.image.manifest.v1+json"
	ociConfig    = "application/vnd.oci.image.config.v1+json"
	dockerImage  = "application/vnd.docker.distribution.manifest.v2+json"
	dockerLayer  = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	dockerConfig = "application/vnd.docker.container.image.v1+json"
	inToto       = "application/vnd.in-toto+json"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int               `json:"size"`
	Platform    *platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Variant      string `json:"variant,omitempty"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        *descriptor  `json:"config,omitempty"`
	Layers        []descriptor `json:"layers,omitempty"`
	Manifests     []descriptor `json:"manifests,omitempty"`
}

type registry struct {
	base, repo string
	client     *http.Client
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: mkindex REGISTRY REPO TAG")
		os.Exit(2)
	}
	r := &registry{base: "http://" + os.Args[1] + "/v2/" + os.Args[2], repo: os.Args[2], client: &http.Client{Timeout: time.Minute}}
	if err := r.index(os.Args[3]); err != nil {
		fmt.Fprintf(os.Stderr, "mkindex %s/%s:%s: %v\n", os.Args[1], os.Args[2], os.Args[3], err)
		os.Exit(1)
	}
}

func digestOf(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

func (r *registry) index(tag string) error {
	body, mediaType, err := r.get("/manifests/"+tag, ociIndex+","+dockerImage)
	if err != nil {
		return err
	}
	if mediaType == ociIndex {
		return nil // made already
	}
	if mediaType != dockerImage {
		return fmt.Errorf("the tag is a %s, not the image docker push leaves", mediaType)
	}
	var amd manifest
	if err := json.Unmarshal(body, &amd); err != nil {
		return err
	}
	amdDesc := descriptor{MediaType: dockerImage, Digest: digestOf(body), Size: len(body), Platform: &platform{Architecture: "amd64", OS: "linux"}}

	// linux/arm64: the amd64 image's config for arm64, over a layer that
	// says what it is.
	cfgBody, _, err := r.get("/blobs/"+amd.Config.Digest, "")
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := json.Unmarshal(cfgBody, &cfg); err != nil {
		return err
	}
	layer, diffID, err := noteLayer("This is the dk8s test harness's stand-in for the linux/arm64 image: the harness builds for linux/amd64 only.\n")
	if err != nil {
		return err
	}
	cfg["architecture"], cfg["variant"] = "arm64", "v8"
	cfg["rootfs"] = map[string]any{"type": "layers", "diff_ids": []string{diffID}}
	delete(cfg, "history")
	armCfg, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	arm := manifest{SchemaVersion: 2, MediaType: dockerImage,
		Config: &descriptor{MediaType: dockerConfig, Digest: digestOf(armCfg), Size: len(armCfg)},
		Layers: []descriptor{{MediaType: dockerLayer, Digest: digestOf(layer), Size: len(layer)}}}
	for _, blob := range [][]byte{armCfg, layer} {
		if err := r.putBlob(blob); err != nil {
			return err
		}
	}
	armDesc, err := r.putManifest(arm, dockerImage)
	if err != nil {
		return err
	}
	armDesc.Platform = &platform{Architecture: "arm64", OS: "linux", Variant: "v8"}

	// The attestation BuildKit attaches to the amd64 image: an in-toto
	// statement about it, under platform unknown/unknown.
	statement, err := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v0.1",
		"predicateType": "https://slsa.dev/provenance/v0.2",
		"subject":       []map[string]any{{"name": "_", "digest": map[string]string{"sha256": amdDesc.Digest[len("sha256:"):]}}},
		"predicate":     map[string]any{"builder": map[string]string{"id": "dk8s test harness"}},
	})
	if err != nil {
		return err
	}
	attCfg, err := json.Marshal(map[string]any{"architecture": "unknown", "os": "unknown", "config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{digestOf(statement)}}})
	if err != nil {
		return err
	}
	att := manifest{SchemaVersion: 2, MediaType: ociManifest,
		Config: &descriptor{MediaType: ociConfig, Digest: digestOf(attCfg), Size: len(attCfg)},
		Layers: []descriptor{{MediaType: inToto, Digest: digestOf(statement), Size: len(statement),
			Annotations: map[string]string{"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}}}}
	for _, blob := range [][]byte{attCfg, statement} {
		if err := r.putBlob(blob); err != nil {
			return err
		}
	}
	attDesc, err := r.putManifest(att, ociManifest)
	if err != nil {
		return err
	}
	attDesc.Platform = &platform{Architecture: "unknown", OS: "unknown"}
	attDesc.Annotations = map[string]string{"vnd.docker.reference.digest": amdDesc.Digest, "vnd.docker.reference.type": "attestation-manifest"}

	idx := manifest{SchemaVersion: 2, MediaType: ociIndex, Manifests: []descriptor{amdDesc, armDesc, attDesc}}
	_, err = r.putManifestAt(tag, idx, ociIndex)
	return err
}

// noteLayer is a gzipped layer of one file, /HARNESS-NOTE, and its diff ID.
func noteLayer(note string) (layer []byte, diffID string, err error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	if err := tw.WriteHeader(&tar.Header{Name: "HARNESS-NOTE", Mode: 0o644, Size: int64(len(note)), ModTime: time.Unix(0, 0)}); err != nil {
		return nil, "", err
	}
	if _, err := io.WriteString(tw, note); err != nil {
		return nil, "", err
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return gz.Bytes(), digestOf(raw.Bytes()), nil
}

func (r *registry) get(path, accept string) ([]byte, string, error) {
	req, err := http.NewRequest(http.MethodGet, r.base+path, nil)
	if err != nil {
		return nil, "", err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	return body, resp.Header.Get("Content-Type"), nil
}

func (r *registry) putBlob(blob []byte) error {
	resp, err := r.client.Post(r.base+"/blobs/uploads/", "application/octet-stream", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("starting an upload: %s", resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return err
	}
	base, _ := url.Parse(r.base)
	loc = base.ResolveReference(loc)
	q := loc.Query()
	q.Set("digest", digestOf(blob))
	loc.RawQuery = q.Encode()
	req, err := http.NewRequest(http.MethodPut, loc.String(), bytes.NewReader(blob))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("uploading %s: %s: %s", digestOf(blob), resp.Status, msg)
	}
	return nil
}

// putManifest pushes m by its digest and describes it.
func (r *registry) putManifest(m manifest, mediaType string) (descriptor, error) {
	return r.putManifestAt("", m, mediaType)
}

// putManifestAt pushes m under ref (its digest for "") and describes it.
func (r *registry) putManifestAt(ref string, m manifest, mediaType string) (descriptor, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return descriptor{}, err
	}
	d := descriptor{MediaType: mediaType, Digest: digestOf(body), Size: len(body)}
	if ref == "" {
		ref = d.Digest
	}
	req, err := http.NewRequest(http.MethodPut, r.base+"/manifests/"+ref, bytes.NewReader(body))
	if err != nil {
		return d, err
	}
	req.Header.Set("Content-Type", mediaType)
	resp, err := r.client.Do(req)
	if err != nil {
		return d, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(resp.Body)
		return d, fmt.Errorf("PUT manifest %s: %s: %s", ref, resp.Status, msg)
	}
	return d, nil
}
