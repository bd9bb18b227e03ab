package integration

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// verbsImage is the image the kubectl verbs' pod runs: the harness's
// busybox (test/harness/images.sh pushes it beside the lock's set), which
// pods pull by its docker.io name through the node's mirror. It has the
// shell, tar (kubectl cp) and httpd (port-forward) a user's images commonly
// have.
const verbsImage = "docker.io/library/busybox:1.37.0"

// assertKubectlVerbs does on node what a user does with a pod on day one,
// through kubectl as the admin of kubeconfig: exec, logs, cp both ways,
// port-forward, debug with an ephemeral container, and a pod whose exec
// readiness and liveness probes and postStart and preStop exec hooks must
// work. Each of them enters the pod's containers through the node's
// runtime (runc exec), which a runtime whose mount namespace is not the
// host's gets wrong. nodeFile reads a file on the node's host: the
// preStop hook writes one there.
func assertKubectlVerbs(t *testing.T, kubeconfig, node, image string, nodeFile func(path string) string) {
	t.Helper()
	kubectlPath := filepath.Join(filepath.Dir(testLock), "kubectl")
	kubectl := func(args ...string) (string, error) {
		out, err := exec.Command(kubectlPath, append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
		return string(out), err
	}
	// must fails the test it is given: a subtest's own.
	must := func(t *testing.T, args ...string) string {
		t.Helper()
		out, err := kubectl(args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	pod := "verbs-" + node
	hostDir := "/tmp/dk8s-verbs-" + node
	// The probes may take 10 s: with the default 1 s, an exec that the
	// emulated VM ran slowly timed out, which failureThreshold 1 made a
	// restart of the container in the middle of the verbs.
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %[1]s}
spec:
  nodeName: %[2]s
  terminationGracePeriodSeconds: 5
  tolerations: [{operator: Exists}]
  volumes: [{name: node, hostPath: {path: %[4]s, type: DirectoryOrCreate}}]
  containers:
  - name: main
    image: %[3]s
    command: [sh, -c, 'echo started; touch /tmp/alive; mkdir /tmp/www; echo served-by-$HOSTNAME >/tmp/www/index.html; httpd -p 8080 -h /tmp/www; exec sleep 100000']
    ports: [{containerPort: 8080}]
    volumeMounts: [{name: node, mountPath: /node}]
    readinessProbe: {exec: {command: [test, -e, /tmp/ready]}, periodSeconds: 1, timeoutSeconds: 10}
    livenessProbe: {exec: {command: [cat, /tmp/alive]}, initialDelaySeconds: 2, periodSeconds: 2, failureThreshold: 1, timeoutSeconds: 10}
    lifecycle:
      postStart: {exec: {command: [sh, -c, 'echo poststart >/tmp/poststart']}}
      preStop: {exec: {command: [sh, -c, 'echo prestop-$HOSTNAME >/node/prestop']}}
`, pod, node, image, hostDir)
	kubectl("delete", "pod", pod, "--ignore-not-found", "--wait")
	must(t, "apply", "-f", manifestFile(t, "verbs", manifest))
	describe := func() string { out, _ := kubectl("describe", "pod", pod); return out }
	if _, err := kubectl("wait", "--for=jsonpath={.status.phase}=Running", "pod/"+pod, "--timeout=3m"); err != nil {
		t.Fatalf("the pod on %s did not run:\n%s", node, describe())
	}
	ready := func() string {
		out, _ := kubectl("get", "pod", pod, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		return out
	}

	t.Run("exec readiness probe: not Ready until kubectl exec makes its file", func(t *testing.T) {
		time.Sleep(3 * time.Second) // three periods of the probe
		if got := ready(); got != "False" {
			t.Fatalf("the pod is Ready=%q before its readiness file exists", got)
		}
		must(t, "exec", pod, "-c", "main", "--", "touch", "/tmp/ready")
		if _, err := kubectl("wait", "--for=condition=Ready", "pod/"+pod, "--timeout=1m"); err != nil {
			t.Fatalf("the pod did not become Ready once its exec probe could pass:\n%s", describe())
		}
	})

	t.Run("kubectl exec, and the postStart exec hook ran", func(t *testing.T) {
		if got := strings.TrimSpace(must(t, "exec", pod, "--", "cat", "/tmp/poststart")); got != "poststart" {
			t.Errorf("the postStart hook's file reads %q, want poststart", got)
		}
		if got := strings.TrimSpace(must(t, "exec", pod, "--", "sh", "-c", "echo $((6*7)) $(id -u)")); got != "42 0" {
			t.Errorf("kubectl exec of a shell printed %q, want \"42 0\"", got)
		}
		out, err := kubectl("exec", pod, "--", "sh", "-c", "exit 3")
		if code := exitCode(err); code != 3 {
			t.Errorf("kubectl exec of 'exit 3' exited %d, want 3:\n%s", code, out)
		}
		if strings.Contains(describe(), "FailedPostStartHook") {
			t.Errorf("the postStart hook failed:\n%s", describe())
		}
	})

	t.Run("kubectl logs", func(t *testing.T) {
		if out := must(t, "logs", pod, "-c", "main"); !strings.Contains(out, "started") {
			t.Errorf("kubectl logs printed %q, want the container's \"started\"", out)
		}
	})

	t.Run("kubectl cp into the pod and out of it", func(t *testing.T) {
		dir, err := os.MkdirTemp("", "dk8s-cp") // no comma, no colon: kubectl cp reads both
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		in := filepath.Join(dir, "in.txt")
		os.WriteFile(in, []byte("copied into "+pod+"\n"), 0o644)
		must(t, "cp", in, pod+":/tmp/in.txt", "-c", "main")
		if got := must(t, "exec", pod, "--", "cat", "/tmp/in.txt"); got != "copied into "+pod+"\n" {
			t.Errorf("the file copied in reads %q", got)
		}
		out := filepath.Join(dir, "out.txt")
		must(t, "cp", pod+":/tmp/poststart", out, "-c", "main")
		if got, _ := os.ReadFile(out); string(got) != "poststart\n" {
			t.Errorf("the file copied out reads %q, want \"poststart\\n\"", got)
		}
	})

	t.Run("kubectl port-forward", func(t *testing.T) {
		cmd := exec.Command(kubectlPath, "--kubeconfig", kubeconfig, "port-forward", "--address", "127.0.0.1", "pod/"+pod, ":8080")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		port := make(chan string, 1)
		go func() {
			re := regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> 8080`)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if m := re.FindStringSubmatch(sc.Text()); m != nil {
					port <- m[1]
				}
			}
			io.Copy(io.Discard, stdout)
		}()
		var p string
		select {
		case p = <-port:
		case <-time.After(30 * time.Second):
			t.Fatalf("kubectl port-forward said no local port in 30s:\n%s", stderr.String())
		}
		client := &http.Client{Timeout: 10 * time.Second}
		resp, err := client.Get("http://127.0.0.1:" + p + "/")
		if err != nil {
			t.Fatalf("GET through port-forward: %v\n%s", err, stderr.String())
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := strings.TrimSpace(string(body)); got != "served-by-"+pod {
			t.Errorf("port-forward reached %q, want the pod's served-by-%s", got, pod)
		}
	})

	t.Run("kubectl debug: an ephemeral container sharing the main one's processes", func(t *testing.T) {
		must(t, "debug", pod, "--image="+image, "-c", "debugger", "--target=main", "--", "sh", "-c", "echo debug-$(cat /proc/1/root/tmp/poststart)")
		var out string
		if !waitFor(2*time.Minute, func() bool {
			out, _ = kubectl("logs", pod, "-c", "debugger")
			return strings.Contains(out, "debug-poststart")
		}) {
			t.Errorf("the ephemeral container should print debug-poststart (the main container's file, through its process), got %q:\n%s", out, describe())
		}
	})

	t.Run("a failing exec liveness probe restarts the container", func(t *testing.T) {
		must(t, "exec", pod, "-c", "main", "--", "rm", "/tmp/alive")
		restarts := func() string {
			out, _ := kubectl("get", "pod", pod, "-o", `jsonpath={.status.containerStatuses[?(@.name=="main")].restartCount}`)
			return strings.TrimSpace(out)
		}
		// The kubelet reports the restart in the pod's status seconds
		// after it, and a slow host (the emulated VM) once took more
		// than a minute.
		if !waitFor(3*time.Minute, func() bool { r := restarts(); return r != "" && r != "0" }) {
			t.Errorf("the container was not restarted after its liveness probe failed (restarts %q):\n%s", restarts(), describe())
		}
	})

	t.Run("the preStop exec hook runs when the pod is deleted", func(t *testing.T) {
		must(t, "delete", "pod", pod, "--wait", "--timeout=1m")
		if got := strings.TrimSpace(nodeFile(hostDir + "/prestop")); got != "prestop-"+pod {
			t.Errorf("the preStop hook's file on the node reads %q, want prestop-%s", got, pod)
		}
	})
}

// exitCode is a command's exit code from its error (0 for none, -1 when it
// did not run).
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if x, ok := err.(*exec.ExitError); ok {
		return x.ExitCode()
	}
	return -1
}
