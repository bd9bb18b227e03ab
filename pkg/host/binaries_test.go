package host

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/host/hosttest"
)

func TestBinaryVersion(t *testing.T) {
	r := &hosttest.Runner{Answer: func(string, int) ([]byte, error) {
		return []byte("containerd github.com/containerd/containerd v1.7.24 88bf19b2105c8b17560993bee28a01ddc2f97182\n"), nil
	}}
	if v := BinaryVersion(context.Background(), r, "/usr/bin/containerd"); v != "v1.7.24" {
		t.Errorf("got %q", v)
	}
	if strings.Join(r.Calls, "|") != "/usr/bin/containerd --version" {
		t.Errorf("ran %q", r.Calls)
	}
	if v := BinaryVersion(context.Background(), &hosttest.Runner{}, "/x"); v != "unknown" {
		t.Errorf("a binary that says nothing is of an unknown version, got %q", v)
	}
}

func TestInstall(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "kubelet")
	os.WriteFile(src, []byte("binary"), 0o700)
	dst := filepath.Join(dir, "cluster", "bin", "kubelet")
	if got, err := Install(src, dst); err != nil || got != dst {
		t.Fatalf("got %s, %v", got, err)
	}
	if st, err := os.Stat(dst); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("the installed binary should be executable by all: %v", err)
	}
	if got, err := Install(dst, dst); err != nil || got != dst {
		t.Errorf("a binary already in place stays: %s, %v", got, err)
	}
	if _, err := Install(filepath.Join(dir, "none"), dst); err == nil {
		t.Error("a missing binary should fail")
	}
	// Another binary of the same size, one larger than a read, and the
	// same one again: replaced, replaced, kept (with its mode put back).
	big := bytes.Repeat([]byte("k"), 3<<20+5)
	for _, c := range []struct {
		data []byte
		kept bool
	}{{[]byte("BINARY"), false}, {big, false}, {big, true}} {
		os.WriteFile(src, c.data, 0o700)
		before, _ := os.Stat(dst)
		os.Chmod(dst, 0o700)
		if _, err := Install(src, dst); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(dst)
		after, _ := os.Stat(dst)
		if !bytes.Equal(got, c.data) || after.Mode().Perm() != 0o755 {
			t.Errorf("after installing %d bytes: dst holds %d bytes, mode %v", len(c.data), len(got), after.Mode().Perm())
		}
		if kept := os.SameFile(before, after); kept != c.kept {
			t.Errorf("installing %d bytes: dst kept %v, want %v", len(c.data), kept, c.kept)
		}
	}
}

func TestRootIsShared(t *testing.T) {
	shared := "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n23 22 0:5 / /dev rw shared:2 - devtmpfs udev rw\n"
	private := "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n23 22 0:5 / /dev rw shared:2 - devtmpfs udev rw\n"
	if !rootIsShared(strings.NewReader(shared)) || rootIsShared(strings.NewReader(private)) {
		t.Error("only / decides, by its own optional fields")
	}
}
