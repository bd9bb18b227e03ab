// Command cluster measures what a dk8s user waits for and pays: start to a
// ready apiserver and to a Ready node, against the floor (the same
// containers made with a bare `docker run` sequence); a warm restart of the
// Docker daemon; `dk8s ps`; and the idle memory of every component. It runs
// each case several times and prints medians, as part of `make bench`.
//
// Usage: go run ./test/bench/cluster DK8S LOCK KUBELET RUNS
package main

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dk8s/dk8s/pkg/bootstrap"
	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/images"
)

const dir = "/var/lib/dk8s-bench"

var dk8s, lock, kubeletBin string

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: cluster DK8S LOCK KUBELET RUNS")
		os.Exit(2)
	}
	dk8s, lock, kubeletBin = os.Args[1], os.Args[2], os.Args[3]
	runs, _ := strconv.Atoi(os.Args[4])
	defer run(dk8s, "reset", "--purge", "--yes", "--dir", dir)
	run(dk8s, "reset", "--purge", "--yes", "--dir", dir)

	var cpReady, nodeReady, floorReady, staticReady, restartReady, restartNode, ps []float64
	var staticRSS map[string]float64
	for i := 0; i < runs; i++ {
		fresh()
		t0 := time.Now()
		run(dk8s, "start", "--control-plane-only", "--lock", lock, "--dir", dir)
		cpReady = append(cpReady, waitReadyz(t0))

		fresh()
		t0 = time.Now()
		run(dk8s, "start", "--lock", lock, "--dir", dir, "--kubelet-binary", kubeletBin)
		nodeReady = append(nodeReady, waitNode(t0))

		fresh()
		floorReady = append(floorReady, dockerRunFloor())

		fresh()
		d, rss := staticPodsStart(i == runs-1)
		staticReady = append(staticReady, d)
		if rss != nil {
			staticRSS = rss
		}
		fmt.Fprintf(os.Stderr, "bench: start round %d of %d: dk8s %.2fs, node %.2fs, floor %.2fs, static pods %.2fs\n",
			i+1, runs, cpReady[i], nodeReady[i], floorReady[i], staticReady[i])
	}
	fresh()
	run(dk8s, "start", "--lock", lock, "--dir", dir, "--kubelet-binary", kubeletBin)
	for i := 0; i < runs; i++ {
		t0 := restartDockerd()
		restartReady = append(restartReady, waitReadyz(t0))
		restartNode = append(restartNode, waitKubelet(t0))
	}
	time.Sleep(30 * time.Second) // let the cluster settle before measuring memory
	rss := idleRSS()
	for i := 0; i < 10; i++ {
		t0 := time.Now()
		run(dk8s, "ps", "--dir", dir)
		ps = append(ps, time.Since(t0).Seconds())
	}

	fmt.Printf("\ndk8s start and restart, medians of %d runs (images present, fresh etcd data each start)\n", runs)
	fmt.Printf("%-44s %10s %12s %8s\n", "case", "dk8s (s)", "floor (s)", "ratio")
	fmt.Printf("%-44s %10.2f %12.2f %7.2fx\n", "start to apiserver /readyz (control plane)", median(cpReady), median(floorReady), median(cpReady)/median(floorReady))
	fmt.Printf("%-44s %10.2f %12.2f %7.2fx   (kubeadm's way: kubelet static pods)\n", "start to apiserver /readyz, vs static pods", median(cpReady), median(staticReady), median(cpReady)/median(staticReady))
	fmt.Printf("%-44s %10.2f %12s\n", "start to node Ready (whole single node)", median(nodeReady), "-")
	fmt.Printf("%-44s %10.2f\n", "Docker daemon restart to apiserver /readyz", median(restartReady))
	fmt.Printf("%-44s %10.2f\n", "Docker daemon restart to kubelet /healthz", median(restartNode))
	fmt.Printf("%-44s %10.3f\n", "dk8s ps (8 components, live probes)", median(ps))
	fmt.Printf("idle memory (RSS) after 30 s settled, MiB:")
	total := 0.0
	for _, p := range sortedKeys(rss) {
		fmt.Printf(" %s %.0f", p, rss[p])
		total += rss[p]
	}
	fmt.Printf("; total %.0f\n", total)
	cp := func(m map[string]float64) float64 {
		return m["etcd"] + m["kube-apiserver"] + m["kube-controller"] + m["kube-scheduler"]
	}
	fmt.Printf("%-44s %10.0f %12.0f %7.2fx   (MiB, etcd + apiserver + controller-manager + scheduler; static pods = kubeadm's way)\n",
		"idle control-plane memory, vs static pods", cp(rss), cp(staticRSS), cp(rss)/cp(staticRSS))
	fmt.Println("floor = the same four containers, images and flags made with a bare `docker run` sequence; ratio = dk8s / floor (1 is the floor)")
	fmt.Println("static pods = the same images and flags as kubelet static pods (the runtime up and holding the images before the clock starts)")
	fmt.Println("the static pods run kubeadm's flags for this version, which are dk8s's too: a memory ratio away from 1 is what the supervisor costs")
}

// fresh removes the cluster's containers and etcd data, keeping the PKI
// and the directory's marker, so each start does the same work (start makes
// etcd's directory again; a bench that made it would leave dk8s a
// directory it did not mark, which start refuses).
func fresh() {
	run(dk8s, "reset", "--dir", dir)
	os.RemoveAll(filepath.Join(dir, "etcd"))
}

// dockerRunFloor starts the control plane dk8s plans, with `docker run`
// alone, and returns the seconds to /readyz.
func dockerRunFloor() float64 {
	_, specs := planned()
	t0 := time.Now()
	for _, s := range specs {
		args := []string{"run", "-d", "--name", s.Name, "--network", "host", "--restart", "always", "--entrypoint", s.Entrypoint[0]}
		for _, m := range s.Mounts {
			v := m.Source + ":" + m.Target
			if m.ReadOnly {
				v += ":ro"
			}
			args = append(args, "-v", v)
		}
		args = append(append(args, s.Image), s.Args...)
		run("docker", args...)
	}
	d := waitReadyz(t0)
	for _, s := range specs {
		run("docker", "rm", "-f", s.Name)
	}
	return d
}

// planned returns the lock's release and the containers dk8s plans for it
// in the bench's directory.
func planned() (*images.Release, []containers.Spec) {
	l, err := images.ReadLock(lock)
	must(err)
	rel, err := l.Release("")
	must(err)
	cfg := bootstrap.DefaultConfig()
	cfg.Dir = dir
	must(cfg.Resolve())
	specs, err := bootstrap.Plan(cfg, rel)
	must(err)
	return rel, specs
}

func restartDockerd() time.Time {
	out, _ := exec.Command("pidof", "dockerd").Output()
	pid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	syscall.Kill(pid, syscall.SIGTERM)
	for syscall.Kill(pid, 0) == nil {
		time.Sleep(50 * time.Millisecond)
	}
	t0 := time.Now()
	run("test/harness/engine.sh")
	return t0
}

func waitReadyz(t0 time.Time) float64 {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for time.Since(t0) < 5*time.Minute {
		if resp, err := c.Get("https://127.0.0.1:6443/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(t0).Seconds()
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	panic("the apiserver never got ready")
}

// waitKubelet times kubelet's return after a restart; the node's Ready
// condition would not show its absence (the apiserver waits 40 s for that).
func waitKubelet(t0 time.Time) float64 {
	for time.Since(t0) < 5*time.Minute {
		if resp, err := http.Get("http://127.0.0.1:10248/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(t0).Seconds()
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	panic("kubelet never came back")
}

func waitNode(t0 time.Time) float64 {
	kubectl := filepath.Join(filepath.Dir(lock), "kubectl")
	for time.Since(t0) < 5*time.Minute {
		out, _ := exec.Command(kubectl, "--kubeconfig", filepath.Join(dir, "admin.conf"), "get", "nodes", "--no-headers").Output()
		if strings.Contains(string(out), " Ready ") {
			return time.Since(t0).Seconds()
		}
		time.Sleep(200 * time.Millisecond)
	}
	panic("the node never got Ready")
}

// idleRSS sums the resident memory of the cluster's processes by name.
func idleRSS() map[string]float64 {
	names := []string{"etcd", "kube-apiserver", "kube-controller", "kube-scheduler", "kubelet", "containerd", "kube-proxy", "coredns"}
	out := map[string]float64{}
	procs, _ := filepath.Glob("/proc/[0-9]*/status")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var name string
		var kb float64
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "Name:"); ok {
				name = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ = strconv.ParseFloat(strings.Fields(v)[0], 64)
			}
		}
		if name == "containerd" {
			// Only dk8s's own runtime: Docker runs a containerd of its own.
			cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
			if !strings.Contains(string(cmdline), dir) {
				continue
			}
		}
		for _, n := range names {
			if name == n {
				out[n] += kb / 1024
			}
		}
	}
	return out
}

func run(name string, args ...string) {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil && !strings.Contains(strings.Join(args, " "), "reset") {
		fmt.Fprintf(os.Stderr, "%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		os.Exit(1)
	}
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func sortedKeys(m map[string]float64) []string {
	var k []string
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}
