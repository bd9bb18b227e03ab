package host

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/host/hosttest"
)

func TestExecOnHostNeedsACommand(t *testing.T) {
	r := &hosttest.Runner{}
	if err := ExecOnHost(context.Background(), r, ExecOptions{Root: "/", ServiceCIDR: "10.96.0.0/12"}, nil); err == nil || len(r.Calls) > 0 {
		t.Errorf("nothing to run is refused before the host is touched: %v, %q", err, r.Calls)
	}
}

func TestCheckStatic(t *testing.T) {
	script := filepath.Join(t.TempDir(), "dk8s")
	os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755)
	if err := CheckStatic(script); err == nil || !strings.Contains(err.Error(), "reading "+script) {
		t.Errorf("a file that is no binary should be refused: %v", err)
	}
}

func TestCleanupOfNoNode(t *testing.T) {
	r := &hosttest.Runner{}
	if err := Cleanup(context.Background(), r, t.TempDir(), "10.244.0.0/16", true); err != nil || len(r.Calls) > 0 {
		t.Errorf("a cluster directory that was never a node's is left alone: %v, %q", err, r.Calls)
	}
}
