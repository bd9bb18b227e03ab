package bundle

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// parts writes a file for each part and returns them.
func parts(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{}
	for _, name := range Parts {
		path := filepath.Join(dir, filepath.Base(name))
		if err := os.WriteFile(path, []byte("the content of "+name), 0o644); err != nil {
			t.Fatal(err)
		}
		files[name] = path
	}
	return files
}

func written(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, Manifest{Kubernetes: "v1.37.2", Platform: "linux/amd64", DK8s: "v0.9"}, parts(t)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	m, err := Unpack(bytes.NewReader(written(t)), dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Kubernetes != "v1.37.2" || m.Platform != "linux/amd64" || m.DK8s != "v0.9" || len(m.Parts) != len(Parts) {
		t.Errorf("manifest = %+v", m)
	}
	for _, name := range Parts {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != "the content of "+name {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
}

// rewrite copies a bundle, passing each entry through edit; an edit that
// returns nil drops the entry.
func rewrite(t *testing.T, in []byte, edit func(hdr *tar.Header, data []byte) []byte) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(in))
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		if data = edit(hdr, data); data == nil {
			continue
		}
		hdr.Size = int64(len(data))
		tw.WriteHeader(hdr)
		tw.Write(data)
	}
	tw.Close()
	return out.Bytes()
}

func TestUnpackRefuses(t *testing.T) {
	good := written(t)
	for name, c := range map[string]struct {
		edit func(*tar.Header, []byte) []byte
		want string
	}{
		"a part altered": {func(h *tar.Header, d []byte) []byte {
			if h.Name == Kubelet {
				d[0] ^= 1
			}
			return d
		}, "its bin/kubelet does not have the sha256"},
		"a part longer": {func(h *tar.Header, d []byte) []byte {
			if h.Name == Images {
				d = append(d, '!')
			}
			return d
		}, "its images.tar has"},
		"a part missing": {func(h *tar.Header, d []byte) []byte {
			if h.Name == Kubectl {
				return nil
			}
			return d
		}, "it has no bin/kubectl"},
		"an entry of its own": {func(h *tar.Header, d []byte) []byte {
			if h.Name == Kubectl {
				h.Name = "../../etc/cron.d/x"
			}
			return d
		}, `it holds "../../etc/cron.d/x"`},
		"no manifest first": {func(h *tar.Header, d []byte) []byte {
			if h.Name == ManifestName {
				return nil
			}
			return d
		}, "not a dk8s bundle"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := Unpack(bytes.NewReader(rewrite(t, good, c.edit)), dir)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
			if name != "no manifest first" && !errors.Is(err, ErrDamaged) {
				t.Errorf("%v should be ErrDamaged", err)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "etc")); err == nil {
				t.Error("an entry was written outside the directory")
			}
		})
	}
}

func TestWriteNeedsEveryPart(t *testing.T) {
	files := parts(t)
	delete(files, Kubectl)
	if err := Write(io.Discard, Manifest{Kubernetes: "v1", Platform: "linux/amd64"}, files); err == nil || !strings.Contains(err.Error(), Kubectl) {
		t.Errorf("got %v", err)
	}
}
