package host

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/host/hosttest"
)

func TestExecOnHostNeedsACommand(t *testing.T) {
	r := &hosttest.Runner{}
	if err := ExecOnHost(context.Background(), r, ExecOptions{ServiceCIDR: "10.96.0.0/12"}, nil); err == nil || len(r.Calls) > 0 {
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

// A host-exec started in a mount namespace of its own, as in the node's
// supervising containers, ends up in its parent's (there, the Docker
// daemon's shim; here, the test's), whose root is the host's: a chroot would have left the namespace's root behind, where
// runc exec later lands.
func TestEnterHostMountsFromAnotherMountNamespace(t *testing.T) {
	if os.Getenv("DK8S_TEST_ENTER_HOST") == "1" {
		if err := enterHostMounts(); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		ns, _ := os.Readlink("/proc/self/ns/mnt")
		fmt.Printf("in %s with %s=%q\n", ns, enteredEnv, os.Getenv(enteredEnv))
		os.Exit(0)
	}
	hosts, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", os.Args[0], "-test.run=^TestEnterHostMountsFromAnotherMountNamespace$")
	cmd.Env = append(os.Environ(), "DK8S_TEST_ENTER_HOST=1")
	out, err := cmd.CombinedOutput()
	if want := fmt.Sprintf("in %s with %s=\"\"\n", hosts, enteredEnv); err != nil || string(out) != want {
		t.Errorf("entering from a private mount namespace: %v\n%s\nwant %q", err, out, want)
	}
}

// The kernel escapes a space, tab, newline and backslash in mountinfo's
// paths: a mount below a directory whose name has one is still found.
func TestParseMountsUnderDecodesEscapes(t *testing.T) {
	mountinfo := `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 8:1 /srv/data /var/lib/dk8s/my\040data rw,relatime shared:1 - ext4 /dev/vda rw
41 22 0:50 / /var/lib/dk8s/kubelet/pods/x/volumes/tab\011and\134back rw - tmpfs tmpfs rw
42 22 0:51 / /var/lib/dk8s-other rw - tmpfs tmpfs rw
43 22 0:52 / /var/lib/dk8s rw - tmpfs tmpfs rw
`
	got, err := parseMountsUnder(strings.NewReader(mountinfo), "/var/lib/dk8s", false)
	want := []string{"/var/lib/dk8s/my data", "/var/lib/dk8s/kubelet/pods/x/volumes/tab\tand\\back"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("mounts below /var/lib/dk8s: %q, want %q (%v)", got, want, err)
	}
	if got, _ := parseMountsUnder(strings.NewReader(mountinfo), "/var/lib/dk8s", true); len(got) != 3 || got[2] != "/var/lib/dk8s" {
		t.Errorf("with the directory itself: %q", got)
	}
}
