package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/host"
)

// Memory is the idle memory of one way of running a cluster, in MiB by
// part, supervisors included: what the host pays for it, by one metric.
type Memory map[string]float64

// metric is how a process's memory is counted.
type metric struct {
	name string
	of   func(proc) float64
}

var (
	// pss splits each shared page among the processes that map it, so a
	// sum over processes counts each page once, program text included.
	pss = metric{"PSS", func(p proc) float64 { return p.pssMiB }}
	// anon is the processes' own pages (heap, stacks): what free(1)'s
	// "used" grows by when they start (with the kernel's own, page tables
	// and the like, which no process figure has); free counts program
	// text among "buff/cache".
	anon = metric{"anonymous", func(p proc) float64 { return p.anonMiB }}
	// rss counts a shared page in every process that maps it: a sum
	// over processes is more than the host pays.
	rss = metric{"RSS", func(p proc) float64 { return p.rssMiB }}
)

// samples is how many times each memory figure is read, 10 s apart; the
// figure is each part's median.
const samples = 3

// sampled reads f samples times, 10 s apart, and returns each part's
// median, for every Memory f returns.
func sampled(f func() []Memory) []Memory {
	var all [][]Memory
	for i := 0; i < samples; i++ {
		if i > 0 {
			time.Sleep(10 * time.Second)
		}
		all = append(all, f())
	}
	out := make([]Memory, len(all[0]))
	for k := range out {
		parts := map[string][]float64{}
		for _, sample := range all {
			for part, v := range sample[k] {
				parts[part] = append(parts[part], v)
			}
		}
		out[k] = Memory{}
		for part, vs := range parts {
			for len(vs) < samples {
				vs = append(vs, 0) // absent from a sample: nothing then
			}
			out[k][part] = median(vs)
		}
	}
	return out
}

// Total is the sum of every part.
func (m Memory) Total() float64 {
	t := 0.0
	for _, v := range m {
		t += v
	}
	return t
}

// Sum is the sum of the named parts.
func (m Memory) Sum(parts ...string) float64 {
	t := 0.0
	for _, p := range parts {
		t += m[p]
	}
	return t
}

// String lists the parts, largest first.
func (m Memory) String() string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %.0f", k, m[k])
	}
	return b.String()
}

// The parts both ways run: the control plane, and what supervises it.
const (
	dockerShims  = "containerd-shim (Docker's)"
	runtimeShims = "containerd-shim (pod runtime)"
	dockerRT     = "containerd (Docker's)"
)

var controlPlane = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// proc is one process of /proc.
type proc struct {
	pid, ppid int
	name      string // the kernel's, cut at 15 bytes
	args      []string
	rssMiB    float64
	pssMiB    float64 // from smaps_rollup; 0 for a kernel thread
	anonMiB   float64 // from smaps_rollup
}

func (p proc) shim() bool { return strings.HasPrefix(p.name, "containerd-shim") }

// flag returns the value of a shim's flag (-id, -address), or "".
func (p proc) flag(name string) string {
	for i, a := range p.args {
		if a == name && i+1 < len(p.args) {
			return p.args[i+1]
		}
	}
	return ""
}

// procs reads every process of the host.
func procs() map[int]proc {
	out := map[int]proc{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		status, err := os.ReadFile(filepath.Join(d, "status"))
		if err != nil {
			continue // gone meanwhile
		}
		var p proc
		p.pid, _ = strconv.Atoi(filepath.Base(d))
		for _, line := range strings.Split(string(status), "\n") {
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimSpace(v)
			switch k {
			case "Name":
				p.name = v
			case "PPid":
				p.ppid, _ = strconv.Atoi(v)
			case "VmRSS":
				kb, _ := strconv.ParseFloat(strings.Fields(v)[0], 64)
				p.rssMiB = kb / 1024
			}
		}
		if rollup, err := os.ReadFile(filepath.Join(d, "smaps_rollup")); err == nil {
			for _, line := range strings.Split(string(rollup), "\n") {
				if f := strings.Fields(line); len(f) >= 2 {
					kb, _ := strconv.ParseFloat(f[1], 64)
					switch f[0] {
					case "Pss:":
						p.pssMiB = kb / 1024
					case "Anonymous:":
						p.anonMiB = kb / 1024
					}
				}
			}
		}
		cmdline, _ := os.ReadFile(filepath.Join(d, "cmdline"))
		p.args = strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		out[p.pid] = p
	}
	return out
}

// children indexes processes by parent.
func children(ps map[int]proc) map[int][]int {
	c := map[int][]int{}
	for _, p := range ps {
		c[p.ppid] = append(c[p.ppid], p.pid)
	}
	return c
}

// podNames are the names of pod processes as the kernel cuts them.
var podNames = map[string]string{"kube-controller": "kube-controller-manager"}

// attribute adds pid and its descendants to m under label, except the pod
// runtime's shims and what runs under them: those go under runtimeShims and
// each pod process under its own name. seen keeps a process counted once.
func attribute(by metric, m Memory, ps map[int]proc, kids map[int][]int, pid int, label string, seen map[int]bool) {
	if seen[pid] {
		return
	}
	seen[pid] = true
	p := ps[pid]
	switch {
	case p.shim() && p.flag("-address") == host.RuntimeSocket:
		label = runtimeShims
	case label == runtimeShims:
		label = p.name // a pod's process (pause, etcd, kube-proxy, ...)
		if n, ok := podNames[label]; ok {
			label = n
		}
	}
	m[label] += by.of(p)
	for _, k := range kids[pid] {
		attribute(by, m, ps, kids, k, label, seen)
	}
}

// runtimeShimsOf adds the pod runtime's shims that are nobody's children
// (re-parented to init) and what they run.
func runtimeShimsOf(by metric, m Memory, ps map[int]proc, kids map[int][]int, seen map[int]bool) {
	for pid, p := range ps {
		if p.shim() && p.flag("-address") == host.RuntimeSocket {
			attribute(by, m, ps, kids, pid, runtimeShims, seen)
		}
	}
}

// nodeMemory is what a dk8s node costs the host: each of its Docker
// containers (the control plane, the csr-approver, the snapshotter, the
// supervised kubelet and pod runtime, with the pods and the runtime's
// shims under it), the Docker shim of each, dockerd and Docker's
// containerd. Processes are found from the containers dk8s labelled, not
// by name, so another cluster on the host (a test's) is not counted;
// dockerd and Docker's containerd are counted whole, whatever else they run.
// shims is the Docker shims' memory by component, so that a comparison of
// the control plane counts its own. ps is one reading of the host's
// processes, counted by metric.
func nodeMemoryOf(by metric, ps map[int]proc) (m, shims Memory) {
	kids := children(ps)
	m, shims = Memory{}, Memory{}
	seen := map[int]bool{}
	out, err := exec.Command("docker", "ps", "--no-trunc", "--filter", "label="+containers.LabelDir+"="+dir,
		"--format", `{{.ID}} {{.Label "`+containers.LabelComponent+`"}}`).Output()
	must(err)
	component := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if id, comp, ok := strings.Cut(line, " "); ok {
			component[id] = comp
		}
	}
	found := 0
	for pid, p := range ps {
		comp, ok := component[p.flag("-id")]
		if !p.shim() || !ok || p.flag("-namespace") != "moby" {
			continue
		}
		found++
		seen[pid] = true
		m[dockerShims] += by.of(p)
		shims[comp] += by.of(p)
		for _, k := range kids[pid] {
			attribute(by, m, ps, kids, k, comp, seen)
		}
	}
	if found != len(component) {
		panic(fmt.Sprintf("found the Docker shims of %d of the node's %d containers", found, len(component)))
	}
	runtimeShimsOf(by, m, ps, kids, seen)
	d := dockerdPID()
	m["dockerd"] += by.of(ps[d])
	for _, k := range kids[d] {
		if ps[k].name == "containerd" {
			m[dockerRT] += by.of(ps[k])
		}
	}
	if m[dockerRT] == 0 {
		panic("Docker's containerd is not dockerd's child here: the bench cannot tell it from another one")
	}
	return m, shims
}

// staticMemory is what the static pods cost the host: kubelet, the pod
// runtime, its shims and the pods. Docker runs on the host anyway, but
// kubeadm's way does not need it.
func staticMemory(by metric, ps map[int]proc, kubelet, runtime int) Memory {
	kids := children(ps)
	m, seen := Memory{}, map[int]bool{}
	attribute(by, m, ps, kids, kubelet, "kubelet", seen)
	attribute(by, m, ps, kids, runtime, "containerd", seen)
	runtimeShimsOf(by, m, ps, kids, seen)
	return m
}

// dockerdPID is the host's dockerd, from its pid file. Not pidof: the
// test machines run dockerds of their own, and a pidof that found none or
// several gave 0, which kill(2) takes for the bench's own process group.
func dockerdPID() int {
	data, err := os.ReadFile("/var/run/docker.pid")
	must(err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		panic(fmt.Sprintf("/var/run/docker.pid holds %q, not dockerd's pid", data))
	}
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if strings.TrimSpace(string(comm)) != "dockerd" {
		panic(fmt.Sprintf("process %d of /var/run/docker.pid is %q, not dockerd", pid, strings.TrimSpace(string(comm))))
	}
	return pid
}
