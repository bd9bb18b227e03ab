package bootstrap

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/containers/containerstest"
)

// The agent's image is the binary and /tmp, nothing else.
func TestAgentRootHoldsTheBinaryAlone(t *testing.T) {
	var buf bytes.Buffer
	if err := writeAgentRoot(&buf, strings.NewReader("ELF..."), 6); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	var got []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, h.Name)
		if h.Name == "bin/dk8s" {
			if h.Mode != 0o755 || h.Uid != 0 {
				t.Errorf("bin/dk8s has mode %o uid %d, want 755 and root's", h.Mode, h.Uid)
			}
			if b, _ := io.ReadAll(tr); string(b) != "ELF..." {
				t.Errorf("bin/dk8s holds %q", b)
			}
		}
		if h.Name == "tmp/" && h.Mode != 0o1777 {
			t.Errorf("tmp/ has mode %o, want 1777", h.Mode)
		}
	}
	if want := []string{"bin/", "tmp/", "bin/dk8s"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("the layer holds %v, want %v", got, want)
	}
	if err := writeAgentRoot(io.Discard, strings.NewReader("short"), 6); err == nil {
		t.Error("a binary shorter than its size should be refused")
	}
}

// A dynamically linked dk8s would not run in an image with no loader:
// refused before anything is made.
func TestAgentImageRefusesADynamicBinary(t *testing.T) {
	e := &containerstest.Engine{}
	err := AgentImage(context.Background(), e, "/bin/sh", "dk8s/dk8s:test")
	if err == nil || !strings.Contains(err.Error(), "linked dynamically") {
		t.Fatalf("want a refusal of a dynamic binary, got %v", err)
	}
	if _, ok := e.Images["dk8s/dk8s:test"]; ok {
		t.Error("an image was made")
	}
}
