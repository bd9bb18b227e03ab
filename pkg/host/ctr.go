package host

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dk8s/dk8s/internal/atomicfile"
	"github.com/dk8s/dk8s/internal/wait"

	"github.com/dk8s/dk8s/pkg/containers"
)

// ctrArgs are ctr's arguments for the runtime's socket and the namespace
// kubelet's pods live in.
func ctrArgs(args ...string) []string {
	return append([]string{"--address", RuntimeSocket, "-n", "k8s.io"}, args...)
}

// ImageSource is the part of the Docker Engine that ImportImages copies
// images from; a containers.Engine is one.
type ImageSource interface {
	InspectImage(ctx context.Context, ref string) (containers.Image, error)
	SaveImages(ctx context.Context, refs []string) (io.ReadCloser, error)
}

// ImportImages copies images from Docker's store into the runtime's, with
// ctr through r, so that the add-ons and the sandbox image need no registry
// at all. What was imported is recorded by Docker image ID in record, so
// that an image that changed under the same name (a re-pull) is imported
// again, as is one the runtime no longer holds. It returns the Docker image
// ID of each ref.
func ImportImages(ctx context.Context, r Runner, docker ImageSource, ctr, record string, refs []string) (map[string]string, error) {
	done := map[string]string{}
	if data, err := os.ReadFile(record); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if ref, id, ok := strings.Cut(line, " "); ok {
				done[ref] = id
			}
		}
	}
	var todo []string
	ids := map[string]string{}
	for _, ref := range refs {
		img, err := docker.InspectImage(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		ids[ref] = img.ID
		out, _ := r.Run(ctx, nil, ctr, ctrArgs("images", "ls", "-q", "name=="+ref)...)
		if done[ref] != img.ID || strings.TrimSpace(string(out)) == "" {
			todo = append(todo, ref)
		}
		done[ref] = img.ID
	}
	if len(todo) == 0 {
		return ids, nil
	}
	rc, err := docker.SaveImages(ctx, todo)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if _, err := r.Run(ctx, rc, ctr, ctrArgs("images", "import", "-")...); err != nil {
		return nil, fmt.Errorf("loading %s into the pod runtime: %w", strings.Join(todo, ", "), err)
	}
	var lines []string
	for _, ref := range slices.Sorted(maps.Keys(done)) {
		lines = append(lines, ref+" "+done[ref])
	}
	return ids, atomicfile.Write(record, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// WaitRuntime waits until the runtime answers ctr on its socket, or timeout
// passes.
func WaitRuntime(ctx context.Context, r Runner, ctr string, timeout time.Duration) error {
	if timeout <= 0 { // asks once
		if _, err := r.Run(ctx, nil, ctr, "--address", RuntimeSocket, "version"); err != nil {
			return fmt.Errorf("the pod runtime did not answer on %s: %w", RuntimeSocket, err)
		}
		return nil
	}
	err := wait.Until(ctx, 300*time.Millisecond, timeout, func(ctx context.Context) (bool, string, error) {
		if _, err := r.Run(ctx, nil, ctr, "--address", RuntimeSocket, "version"); err != nil {
			return false, err.Error(), nil
		}
		return true, "", nil
	})
	if err != nil {
		return fmt.Errorf("the pod runtime did not answer on %s: %w", RuntimeSocket, err)
	}
	return nil
}

// StopPods kills every pod container the runtime runs and deletes it, with
// its root file system mounts, through ctr while the runtime still answers,
// then removes the pods' network namespaces: killed without kubelet, no
// CNI teardown runs, and a namespace left pinned at /var/run/netns keeps
// the pod's veth and its address on the host. Pods outlive their runtime's
// container (their shims are not its children), so removing the runtime
// alone would leave them running.
func StopPods(ctx context.Context, r Runner, ctr string) {
	run := func(args ...string) string {
		out, _ := r.Run(ctx, nil, ctr, ctrArgs(args...)...)
		return string(out)
	}
	ids := strings.Fields(run("containers", "ls", "-q"))
	var nsPaths []string
	for _, pid := range taskPIDs(run("tasks", "ls")) {
		nsPaths = append(nsPaths, fmt.Sprintf("/proc/%d/ns/net", pid))
	}
	netns := podNetns(NetnsDir, nsPaths)
	for _, id := range ids {
		run("tasks", "kill", "--signal", "SIGKILL", id)
	}
	// Killed tasks stop within moments; what does not is deleted by force.
	_ = wait.Until(ctx, 100*time.Millisecond, 5*time.Second, func(context.Context) (bool, string, error) {
		return !strings.Contains(run("tasks", "ls"), "RUNNING"), "tasks still running", nil
	})
	for _, id := range ids {
		run("tasks", "delete", "--force", id)
		run("containers", "delete", id)
	}
	for _, ns := range netns {
		syscall.Unmount(ns, syscall.MNT_DETACH)
		os.Remove(ns)
	}
}

// NetnsDir is where the runtime's CRI pins each pod sandbox's network
// namespace (containerd's default, as for every CRI runtime on the host).
const NetnsDir = "/var/run/netns"

// taskPIDs reads the PIDs of ctr tasks ls's running tasks.
func taskPIDs(ls string) []int {
	var pids []int
	for _, line := range strings.Split(ls, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[2] == "RUNNING" {
			if pid, err := strconv.Atoi(f[1]); err == nil && pid > 0 {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// podNetns lists the entries of dir that are the same namespace (the same
// device and inode) as one of nsPaths: the pods' own, and never another
// runtime's sharing the directory.
func podNetns(dir string, nsPaths []string) []string {
	type key struct{ dev, ino uint64 }
	ours := map[key]bool{}
	for _, p := range nsPaths {
		var st syscall.Stat_t
		if syscall.Stat(p, &st) == nil {
			ours[key{uint64(st.Dev), st.Ino}] = true
		}
	}
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		var st syscall.Stat_t
		if syscall.Stat(p, &st) == nil && ours[key{uint64(st.Dev), st.Ino}] {
			out = append(out, p)
		}
	}
	return out
}
