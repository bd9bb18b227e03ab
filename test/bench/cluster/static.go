package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/host"
)

// staticPodsStart starts the same four components the kubeadm way: static
// pod manifests that a standalone kubelet runs through the pod runtime. It
// returns the seconds from kubelet's start to /readyz; the runtime is up
// and holds the images before the clock starts, as on a kubeadm host.
// It needs the runtime configuration a full `dk8s start` left in dir.
func staticPodsStart(measure bool) (float64, []Memory) {
	rel, specs := planned()

	work := filepath.Join(dir, "static-bench")
	manifests := filepath.Join(work, "manifests")
	must(os.MkdirAll(manifests, 0o700))
	for _, s := range specs {
		must(os.WriteFile(filepath.Join(manifests, s.Name+".yaml"), []byte(staticPod(s)), 0o600))
	}
	kcfg := filepath.Join(work, "kubelet.yaml")
	must(os.WriteFile(kcfg, []byte(fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: %s
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
failCgroupV1: false
address: 127.0.0.1
readOnlyPort: 0
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
`, manifests, host.RuntimeSocket)), 0o600))

	runtime := exec.Command("containerd", "--config", filepath.Join(dir, "containerd", "config.toml"))
	must(runtime.Start())
	// Stopped however the measure ends, a panic included: these two are
	// the bench's own processes, which no dk8s reset knows of.
	defer func() {
		host.StopPods(context.Background(), host.Exec{}, "ctr")
		runtime.Process.Signal(syscall.SIGTERM)
		runtime.Wait()
		must(host.UnmountUnder(work))
		must(host.UnmountUnder("/run/dk8s"))
		os.RemoveAll(work)
	}()
	ctr := func(args ...string) string {
		out, _ := exec.Command("ctr", append([]string{"--address", host.RuntimeSocket, "-n", "k8s.io"}, args...)...).CombinedOutput()
		return string(out)
	}
	for i := 0; i < 100 && !strings.Contains(ctr("version"), "Server"); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	var refs []string
	for _, s := range specs {
		refs = append(refs, s.Image)
	}
	pause, _ := rel.Image("pause")
	refs = append(refs, pause.Name)
	save := exec.Command("docker", append([]string{"save"}, refs...)...)
	imp := exec.Command("ctr", "--address", host.RuntimeSocket, "-n", "k8s.io", "images", "import", "-")
	imp.Stdin, _ = save.StdoutPipe()
	must(save.Start())
	if out, err := imp.CombinedOutput(); err != nil {
		panic(fmt.Sprintf("importing images: %v %s", err, out))
	}
	save.Wait()

	t0 := time.Now()
	kubelet := exec.Command(kubeletBin, "--config", kcfg, "--root-dir", filepath.Join(work, "kubelet"))
	must(kubelet.Start())
	defer func() {
		kubelet.Process.Kill()
		kubelet.Wait()
	}()
	d := waitReadyz(t0)
	// The apiserver that answered must be the static pod's.
	if n := strings.Count(ctr("tasks", "ls"), "RUNNING"); n < 8 {
		panic(fmt.Sprintf("only %d static pod tasks run; the answer came from elsewhere:\n%s", n, ctr("tasks", "ls")))
	}
	var mem []Memory // PSS, RSS
	if measure {
		time.Sleep(30 * time.Second)
		mem = sampled(func() []Memory {
			ps := procs()
			return []Memory{staticMemory(pss, ps, kubelet.Process.Pid, runtime.Process.Pid), staticMemory(rss, ps, kubelet.Process.Pid, runtime.Process.Pid)}
		})
	}
	return d, mem
}

// staticPod renders a spec as the static pod kubeadm would write for it.
func staticPod(s containers.Spec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: kube-system\nspec:\n  hostNetwork: true\n  containers:\n  - name: main\n    image: %s\n    imagePullPolicy: Never\n    command:\n", s.Name, s.Image)
	for _, a := range append(append([]string(nil), s.Entrypoint...), s.Args...) {
		fmt.Fprintf(&b, "    - %q\n", a)
	}
	b.WriteString("    volumeMounts:\n")
	for i, m := range s.Mounts {
		fmt.Fprintf(&b, "    - {name: v%d, mountPath: %q, readOnly: %t}\n", i, m.Target, m.ReadOnly)
	}
	b.WriteString("  volumes:\n")
	for i, m := range s.Mounts {
		fmt.Fprintf(&b, "  - {name: v%d, hostPath: {path: %q}}\n", i, m.Source)
	}
	return b.String()
}
