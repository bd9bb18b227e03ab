package integration

import (
	"archive/tar"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/dk8s/dk8s/pkg/images"
)

// dk8s save and load, and what load refuses.

func TestSaveLoadRoundTrip(t *testing.T) {
	engine, rel := harness(t)
	clean(t, engine, rel)
	if r := dk8s(t, nil, "pull", "--mirror", flatMirror); r.code != 0 {
		t.Fatal(r)
	}
	archive := filepath.Join(t.TempDir(), "set.tar")
	if r := dk8s(t, nil, "save", "-o", archive); r.code != 0 {
		t.Fatalf("save failed:\n%s", r)
	}
	clean(t, engine, rel)

	// The machine that loads has no registry; it checks what it loads
	// against its own lock (here the harness's), not the archive's.
	r := dk8s(t, nil, "load", "-i", archive)
	if r.code != 0 {
		t.Fatalf("load failed:\n%s", r)
	}
	assertComplete(t, engine, rel)
	for _, img := range rel.Images {
		if line := lineWith(r.stdout, img.Name); !strings.Contains(line, "loaded") || !strings.Contains(line, "verified") {
			t.Errorf("load line for %s = %q", img.Name, line)
		}
	}
	noQuarantineNames(t)

	t.Run("--require-verified refuses an image the lock has no digest for", func(t *testing.T) {
		clean(t, engine, rel)
		lock, scheduler := lockWithout(t, "kube-scheduler")
		r := dk8s(t, nil, "load", "-i", archive, "--lock", lock, "--require-verified")
		if r.code == 0 {
			t.Fatalf("load should fail:\n%s", r)
		}
		absent(t, engine, scheduler.Name)
		for _, a := range scheduler.Aliases {
			absent(t, engine, a)
		}
		if !strings.Contains(lineWith(r.stderr, scheduler.Name), "unverified, so --require-verified refused it") {
			t.Errorf("stderr should say why %s was refused:\n%s", scheduler.Name, r.stderr)
		}
		present(t, engine, imageOf(t, rel, "kube-apiserver"))
		noQuarantineNames(t)
	})

	t.Run("a file that is not an image set is refused", func(t *testing.T) {
		bogus := filepath.Join(t.TempDir(), "bogus.tar")
		os.WriteFile(bogus, []byte("not a tar"), 0o644)
		r := dk8s(t, nil, "load", "-i", bogus)
		if r.code == 0 || !strings.Contains(r.stderr, "not a dk8s image set") {
			t.Errorf("want a clear refusal:\n%s", r)
		}
	})
}

// An archive altered in transit, its carried lock rewritten to vouch for
// pause's content under kube-apiserver's name, is refused: the lock dk8s
// trusts decides, and nothing of the archive's reaches a canonical name.
func TestLoadRefusesTamperedArchive(t *testing.T) {
	engine, rel := harness(t)
	clean(t, engine, rel)
	if r := dk8s(t, nil, "pull", "--mirror", flatMirror); r.code != 0 {
		t.Fatal(r)
	}
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.tar"), filepath.Join(dir, "tampered.tar")
	if r := dk8s(t, nil, "save", "-o", good); r.code != 0 {
		t.Fatalf("save failed:\n%s", r)
	}
	api, _ := rel.Image("kube-apiserver")
	tamper(t, good, bad, "kube-apiserver", "pause")
	apiNames := append([]string{api.Name}, api.Aliases...)

	refused := func(t *testing.T, r result) {
		t.Helper()
		if r.code == 0 {
			t.Fatalf("loading the tampered archive should fail:\n%s", r)
		}
		if !strings.Contains(lineWith(r.stderr, api.Name), "does not match images.lock") {
			t.Errorf("stderr should say %s does not match:\n%s", api.Name, r.stderr)
		}
		if line := lineWith(r.stdout, api.Name); !strings.Contains(line, "FAILED") || !strings.Contains(line, "MISMATCH") {
			t.Errorf("load line for %s = %q, want FAILED and MISMATCH", api.Name, line)
		}
		noQuarantineNames(t)
	}

	t.Run("the good image keeps its names", func(t *testing.T) {
		before := present(t, engine, api.Name)
		refused(t, dk8s(t, nil, "load", "-i", bad))
		for _, name := range apiNames {
			if got := present(t, engine, name); got.ID != before.ID {
				t.Errorf("%s was replaced: %s, had %s", name, got.ID, before.ID)
			}
		}
	})

	t.Run("an absent image stays absent", func(t *testing.T) {
		clean(t, engine, rel)
		refused(t, dk8s(t, nil, "load", "-i", bad))
		for _, name := range apiNames {
			absent(t, engine, name)
		}
		// The rest of the archive is sound, and loads.
		pause := present(t, engine, imageOf(t, rel, "pause"))
		if v := images.Verify(*mustImage(t, rel, "pause"), pause, "linux/amd64"); v.Verdict != images.Verified {
			t.Errorf("pause: %s (%s)", v.Verdict, v.Detail)
		}
	})
}

// lockWithout writes a copy of the harness's lock with component's digests
// blanked, and returns its path and that image.
func lockWithout(t *testing.T, component string) (string, images.Image) {
	t.Helper()
	lock := readTestLock(t)
	rel, err := lock.Release("")
	if err != nil {
		t.Fatal(err)
	}
	img, ok := rel.Image(component)
	if !ok {
		t.Fatalf("the lock has no %s", component)
	}
	img.Digest, img.Platforms = "", nil
	return writeLock(t, lock), *img
}

// tamper copies the 'dk8s save' archive src to dst as an attacker would
// alter it: the carried lock gives victim the digests of donor, and
// manifest.json (and index.json, in an OCI layout) gives donor's content
// victim's names.
func tamper(t *testing.T, src, dst, victim, donor string) {
	t.Helper()
	var victimNames []string
	var donorName string
	rewriteTar(t, src, dst, func(hdr *tar.Header, data []byte) []byte {
		var err error
		switch hdr.Name {
		case "dk8s-images.lock": // the first entry
			lock, err := images.ParseLock(data)
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := lock.Release("")
			v, d := mustImage(t, rel, victim), mustImage(t, rel, donor)
			v.Digest, v.Platforms = d.Digest, d.Platforms
			victimNames, donorName = append([]string{v.Name}, v.Aliases...), d.Name
			if data, err = lock.Marshal(); err != nil {
				t.Fatal(err)
			}
		case "manifest.json":
			var entries []map[string]any
			if err := json.Unmarshal(data, &entries); err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				var tags []any
				isDonor := false
				for _, tag := range e["RepoTags"].([]any) {
					if slices.Contains(victimNames, tag.(string)) {
						continue
					}
					isDonor = isDonor || tag == donorName
					tags = append(tags, tag)
				}
				if isDonor {
					for _, n := range victimNames {
						tags = append(tags, n)
					}
				}
				e["RepoTags"] = tags
			}
			if data, err = json.Marshal(entries); err != nil {
				t.Fatal(err)
			}
		case "index.json":
			// An OCI layout (Docker's containerd store writes one) names
			// each image in its descriptor's annotations: the victim's
			// names are pointed at the donor's content.
			var index struct {
				SchemaVersion int              `json:"schemaVersion"`
				MediaType     string           `json:"mediaType,omitempty"`
				Manifests     []map[string]any `json:"manifests"`
			}
			if err := json.Unmarshal(data, &index); err != nil {
				t.Fatal(err)
			}
			name := func(d map[string]any) string {
				ann, _ := d["annotations"].(map[string]any)
				n, _ := ann["io.containerd.image.name"].(string)
				return n
			}
			var donorDesc map[string]any
			for _, d := range index.Manifests {
				if name(d) == donorName {
					donorDesc = d
				}
			}
			if donorDesc == nil {
				t.Fatalf("index.json names no %s", donorName)
			}
			for _, d := range index.Manifests {
				if slices.Contains(victimNames, name(d)) {
					for _, k := range []string{"mediaType", "digest", "size", "platform"} {
						if v, ok := donorDesc[k]; ok {
							d[k] = v
						} else {
							delete(d, k)
						}
					}
				}
			}
			if data, err = json.Marshal(index); err != nil {
				t.Fatal(err)
			}
		}
		return data
	})
}

// rewriteTar copies the tar file src to dst, each entry's content passed
// through edit (which may change its header too).
func rewriteTar(t *testing.T, src, dst string, edit func(hdr *tar.Header, data []byte) []byte) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	tr, tw := tar.NewReader(in), tar.NewWriter(out)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		data = edit(hdr, data)
		hdr.Size = int64(len(data))
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// noQuarantineNames fails the test for any name 'dk8s load' gives images
// while it checks them that is still in Docker's store.
func noQuarantineNames(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	c, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		t.Fatal(err)
	}
	list, err := c.ImageList(ctx, client.ImageListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range list.Items {
		for _, tag := range img.RepoTags {
			if strings.HasPrefix(tag, "dk8s-load.local/") {
				t.Errorf("quarantine name %s is left in Docker's store", tag)
			}
		}
	}
}

// TestPullRequireVerified: an image the lock has no digest for is refused
// before it gets any name, and the pull fails.
func TestPullRequireVerified(t *testing.T) {
	engine, rel := harness(t)
	clean(t, engine, rel)
	lock, scheduler := lockWithout(t, "kube-scheduler")

	r := dk8s(t, nil, "pull", "--lock", lock, "--mirror", flatMirror, "--require-verified")
	if r.code == 0 {
		t.Fatalf("pull should fail:\n%s", r)
	}
	for _, ref := range append([]string{scheduler.Name, mirrorRef(t, flatMirror, scheduler.Name)}, scheduler.Aliases...) {
		absent(t, engine, ref)
	}
	for _, want := range []string{"1 of the images could not be brought in", scheduler.Name, "unverified, so --require-verified refused it", "dk8s images lock --from upstream"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr should say %q:\n%s", want, r.stderr)
		}
	}
	if line := lineWith(r.stdout, scheduler.Name); !strings.Contains(line, "failed") || !strings.Contains(line, "unverified") {
		t.Errorf("summary line for %s = %q, want failed and unverified", scheduler.Name, line)
	}
	if line := lineWith(r.stdout, imageOf(t, rel, "kube-apiserver")); !strings.Contains(line, "verified") || strings.Contains(line, "unverified") {
		t.Errorf("kube-apiserver should still be pulled, verified: %q", line)
	}
}

func mustImage(t *testing.T, rel *images.Release, component string) *images.Image {
	t.Helper()
	img, ok := rel.Image(component)
	if !ok {
		t.Fatalf("the lock has no %s", component)
	}
	return img
}
