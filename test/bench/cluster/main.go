// Command cluster measures what a dk8s user waits for and pays: start to a
// ready apiserver and to a Ready node, against the floor (the same
// containers made with a bare `docker run` sequence); a warm restart of the
// Docker daemon; a rerun of start with nothing to do; `dk8s ps`; and the
// idle memory of the node, supervisors included, beside kubelet static
// pods'. It runs each case several times and prints medians, each beside
// issue 13's target where it has one, as part of `make bench`.
//
// Usage: go run ./test/bench/cluster DK8S LOCK KUBELET RUNS
package main

import (
	"bytes"
	"context"
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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

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
	runs, err := strconv.Atoi(os.Args[4])
	if err != nil || runs < 1 {
		fmt.Fprintf(os.Stderr, "RUNS is %q, want a number of rounds\n", os.Args[4])
		os.Exit(2)
	}
	// A failure panics, so that the reset below runs before the exit: the
	// bench leaves no cluster behind, broken or not.
	failed := false
	func() {
		defer func() {
			if r := recover(); r != nil {
				fmt.Fprintf(os.Stderr, "bench: %v\n", r)
				failed = true
			}
			run(dk8s, "reset", "--purge", "--yes", "--dir", dir)
		}()
		run(dk8s, "reset", "--purge", "--yes", "--dir", dir)
		// The image set present, as every case below assumes: the pull
		// bench before this one leaves the store without it.
		run(dk8s, "pull", "--lock", lock, "--mirror", "127.0.0.1:5001/google_containers")
		report(measure(runs))
	}()
	if failed {
		os.Exit(1)
	}
}

// results are the bench's figures: seconds per run, and memory.
type results struct {
	runs int
	// cpReady is start (--control-plane-only) to apiserver /readyz, watched
	// while start runs; cpReturn is start to its return, after the
	// controller-manager, the scheduler and dk8s's helpers are up too.
	cpReady, cpReturn, nodeReady, floorReady, staticReady, rerun, restartReady, restartKubelet, ps []float64
	// Each by PSS and by RSS, the median of samples readings.
	node, nodeShims, static          Memory // PSS
	nodeRSS, nodeShimsRSS, staticRSS Memory
	nodeAnon                         Memory
}

func measure(runs int) results {
	r := results{runs: runs}
	for i := 0; i < runs; i++ {
		// The three ways to a ready apiserver, in an order that turns each
		// round, so that none always runs first (on the coldest caches) or
		// last.
		ways := []struct {
			name    string
			measure func()
		}{
			{"dk8s", func() {
				ready, returned := startToReadyz()
				r.cpReady, r.cpReturn = append(r.cpReady, ready), append(r.cpReturn, returned)
			}},
			{"the floor", func() { r.floorReady = append(r.floorReady, dockerRunFloor()) }},
			{"static pods", func() {
				d, mem := staticPodsStart(i == runs-1)
				r.staticReady = append(r.staticReady, d)
				if mem != nil {
					r.static, r.staticRSS = mem[0], mem[1]
				}
			}},
		}
		for k := range ways {
			fresh()
			ways[(i+k)%len(ways)].measure()
		}

		// From nothing: a reset that keeps the directory keeps the node's
		// CNI configuration and flannel's lease too, with which kubelet
		// says Ready before the pod network has come up again.
		run(dk8s, "reset", "--purge", "--yes", "--dir", dir)
		r.nodeReady = append(r.nodeReady, startToNodeReady())
		fmt.Fprintf(os.Stderr, "bench: start round %d of %d (%s first): dk8s /readyz %.2fs (start returned %.2fs), floor %.2fs, static pods %.2fs; node Ready %.2fs\n",
			i+1, runs, ways[i%len(ways)].name, r.cpReady[i], r.cpReturn[i], r.floorReady[i], r.staticReady[i], r.nodeReady[i])
	}
	fresh()
	run(dk8s, "start", "--lock", lock, "--dir", dir, "--kubelet-binary", kubeletBin)
	waitNode(time.Now())
	// A rerun with nothing to do: start on a node that runs.
	for i := 0; i < runs; i++ {
		t0 := time.Now()
		run(dk8s, "start", "--lock", lock, "--dir", dir, "--kubelet-binary", kubeletBin)
		r.rerun = append(r.rerun, time.Since(t0).Seconds())
	}
	for i := 0; i < runs; i++ {
		t0 := restartDockerd()
		// Each on its own clock from the same t0: polled one after the
		// other, kubelet's could never show less than the apiserver's.
		ready, kubelet := both(func() float64 { return waitReadyz(t0) }, func() float64 { return waitKubelet(t0) })
		r.restartReady = append(r.restartReady, ready)
		r.restartKubelet = append(r.restartKubelet, kubelet)
	}
	time.Sleep(30 * time.Second) // let the cluster settle before measuring memory
	mem := sampled(func() []Memory {
		ps := procs()
		node, shims := nodeMemoryOf(pss, ps)
		nodeRSS, shimsRSS := nodeMemoryOf(rss, ps)
		nodeAnon, _ := nodeMemoryOf(anon, ps)
		return []Memory{node, shims, nodeRSS, shimsRSS, nodeAnon}
	})
	r.node, r.nodeShims, r.nodeRSS, r.nodeShimsRSS, r.nodeAnon = mem[0], mem[1], mem[2], mem[3], mem[4]
	for i := 0; i < 10; i++ {
		t0 := time.Now()
		run(dk8s, "ps", "--dir", dir)
		r.ps = append(r.ps, time.Since(t0).Seconds())
	}
	return r
}

// startToReadyz starts the control plane alone and returns the seconds to
// the apiserver's /readyz, watched while start runs, and to start's return.
func startToReadyz() (ready, returned float64) {
	var out bytes.Buffer
	cmd := exec.Command(dk8s, "start", "--control-plane-only", "--lock", lock, "--dir", dir)
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	must(cmd.Start())
	ready = waitReadyz(t0)
	if err := cmd.Wait(); err != nil {
		panic(fmt.Sprintf("%s start --control-plane-only: %v\n%s", dk8s, err, out.String()))
	}
	return ready, time.Since(t0).Seconds()
}

// startToNodeReady starts a whole node and returns the seconds to its
// Ready, watched while start runs: start goes on to wait for the add-ons,
// which timing its return would count too.
func startToNodeReady() float64 {
	var out bytes.Buffer
	cmd := exec.Command(dk8s, "start", "--lock", lock, "--dir", dir, "--kubelet-binary", kubeletBin)
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	must(cmd.Start())
	ready := waitNode(t0)
	if err := cmd.Wait(); err != nil {
		panic(fmt.Sprintf("%s start: %v\n%s", dk8s, err, out.String()))
	}
	return ready
}

// both runs f and g at once and returns their results; a panic in either
// is the caller's.
func both(f, g func() float64) (float64, float64) {
	var a, b float64
	var pa, pb any
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { pb = recover() }()
		b = g()
	}()
	func() {
		defer func() { pa = recover() }()
		a = f()
	}()
	<-done
	if pa != nil {
		panic(pa)
	}
	if pb != nil {
		panic(pb)
	}
	return a, b
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
	// Removed however the measure ends: these carry no dk8s label, so no
	// dk8s reset would find them.
	defer func() {
		for _, s := range specs {
			exec.Command("docker", "rm", "-f", s.Name).Run()
		}
	}()
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
	return waitReadyz(t0)
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

// restartDockerd stops the host's dockerd, waits until it is gone and
// starts it again through the harness; the clock starts at the start.
func restartDockerd() time.Time {
	pid := dockerdPID()
	must(syscall.Kill(pid, syscall.SIGTERM))
	for deadline := time.Now().Add(time.Minute); syscall.Kill(pid, 0) == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			panic(fmt.Sprintf("dockerd (%d) did not stop within a minute of SIGTERM", pid))
		}
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
	c := &http.Client{Timeout: time.Second}
	for time.Since(t0) < 5*time.Minute {
		if resp, err := c.Get("http://127.0.0.1:10248/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(t0).Seconds()
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	panic("kubelet never came back")
}

// waitNode polls the node's Ready condition through the API, every 100 ms,
// from t0; a kubectl every poll would take a share of the CPU the start
// it times needs.
func waitNode(t0 time.Time) float64 {
	var cs *kubernetes.Clientset
	for time.Since(t0) < 5*time.Minute {
		if cs == nil {
			if rc, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "admin.conf")); err == nil {
				rc.Timeout = 2 * time.Second
				cs, _ = kubernetes.NewForConfig(rc)
			}
		}
		if cs != nil {
			if nodes, err := cs.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{}); err == nil {
				for _, n := range nodes.Items {
					for _, c := range n.Status.Conditions {
						if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
							return time.Since(t0).Seconds()
						}
					}
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	panic("the node never got Ready")
}

// run runs a command; its failure panics with its output (a reset's is
// only printed: there may be nothing to reset).
func run(name string, args ...string) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	if len(args) > 0 && args[0] == "reset" {
		fmt.Fprint(os.Stderr, msg)
		return
	}
	panic(msg)
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
