package integration

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// What the node tests ask of the node: kubectl as its admin, a Service
// from the host, and that a purge left nothing behind.

// kubectl runs the harness's kubectl against the cluster as its admin.
func (c *cluster) kubectl(args ...string) (string, error) {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(filepath.Dir(testLock), "kubectl"), append([]string{"--kubeconfig", filepath.Join(c.dir, "admin.conf")}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *cluster) mustKubectl(args ...string) string {
	c.t.Helper()
	out, err := c.kubectl(args...)
	if err != nil {
		c.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// get fetches url from the host, retrying for up to d: what a user's curl
// against a Service would see.
func get(url string, d time.Duration) (string, error) {
	var body string
	var err error
	waitFor(d, func() bool {
		var resp *http.Response
		cl := &http.Client{Timeout: 5 * time.Second}
		if resp, err = cl.Get(url); err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = strings.TrimSpace(string(b))
		if resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
			return false
		}
		return true
	})
	return body, err
}

// assertNodeCleanedUp runs after the cluster's purge: nothing of the node
// may stay on the host.
func assertNodeCleanedUp(t *testing.T, c *cluster) {
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mounts), "\n") {
		if strings.Contains(l, c.dir) || strings.Contains(l, "/run/dk8s") {
			t.Errorf("a mount is left: %s", l)
		}
	}
	out, _ := exec.Command("iptables-save").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "KUBE-") || strings.Contains(l, `\"dk8s\"`) || strings.Contains(l, "10.244.") {
			t.Errorf("an iptables rule is left: %s", l)
		}
	}
	if _, err := os.Stat("/sys/class/net/dk8s0"); err == nil {
		t.Error("the dk8s0 bridge is left")
	}
	// dk8s's runtime's shims only: Docker's own containerd runs the same
	// shim binary for Docker's containers, with its own socket.
	if out, _ := exec.Command("pgrep", "-af", "containerd-shim.*-address /run/dk8s/containerd/").Output(); len(out) > 0 {
		t.Errorf("pod shims are left: %s", out)
	}
	if ns, _ := filepath.Glob("/var/run/netns/cni-*"); len(ns) > len(c.netnsBefore) {
		for _, n := range ns {
			if !slices.Contains(c.netnsBefore, n) {
				t.Errorf("a pod's network namespace is left (it keeps the pod's veth): %s", n)
			}
		}
	}
	if _, err := os.Stat("/sys/class/net/dk8s-svc"); err == nil {
		t.Error("the dk8s-svc device (the service range's route) is left")
	}
	if dirs, _ := filepath.Glob("/sys/fs/cgroup/*/dk8s"); len(dirs) > 0 {
		t.Errorf("the runtime's cgroups are left: %v", dirs)
	}
}

// txPackets reads how many packets the host sent on a device.
func txPackets(t *testing.T, dev string) int {
	t.Helper()
	data, err := os.ReadFile("/sys/class/net/" + dev + "/statistics/tx_packets")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return n
}
