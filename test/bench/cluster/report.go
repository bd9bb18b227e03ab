package main

import (
	"fmt"
	"strings"
)

// target is one of the issues' targets (issue 13's, and issue 26's next): a bound on a figure, in the figure's
// unit (a ratio, seconds, MiB). The bench prints it beside the figure, and
// whether the figure meets it; it asserts nothing.
type target struct {
	text  string
	bound float64
}

func (t target) met(v float64) string {
	if v <= t.bound {
		return "yes"
	}
	return "no"
}

var (
	readyzTarget = target{"dk8s/floor <= 1.15x", 1.15}
	rerunTarget  = target{"<= 1 s", 1}
	nodeTarget   = target{"<= 8 s", 8}
)

const rowFormat = "%-46s %10s %10s %8s  %-20s %s\n"

// row prints a figure, its floor and ratio where it has them ("" for none),
// and its target with MET where it has one.
func row(name, figure, floor, ratio string, t *target, v float64) {
	tt, met := "-", "-"
	if t != nil {
		tt, met = t.text, t.met(v)
	}
	fmt.Printf(rowFormat, name, figure, dash(floor), dash(ratio), tt, met)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func f2(v float64) string { return fmt.Sprintf("%.2f", v) }
func x2(v float64) string { return fmt.Sprintf("%.2fx", v) }

func report(r results) {
	cp, floor, static := median(r.cpReady), median(r.floorReady), median(r.staticReady)
	fmt.Printf("\ndk8s start and restart, medians of %d runs (images present, fresh etcd data each start; each round turns which of dk8s, floor and static pods goes first)\n", r.runs)
	fmt.Printf(rowFormat, "case", "dk8s", "floor", "ratio", "TARGET", "MET")
	row("start to apiserver /readyz (control plane, s)", f2(cp), f2(floor), x2(cp/floor), &readyzTarget, cp/floor)
	row("start to /readyz, vs static pods (s)", f2(cp), f2(static), x2(cp/static), nil, 0)
	row("start to its return, helpers up too (s)", f2(median(r.cpReturn)), "", "", nil, 0)
	row("rerun of start with nothing to do (s)", f2(median(r.rerun)), "", "", &rerunTarget, median(r.rerun))
	row("start to node Ready, whole node (s)", f2(median(r.nodeReady)), "", "", &nodeTarget, median(r.nodeReady))
	row("Docker daemon restart to apiserver /readyz (s)", f2(median(r.restartReady)), "", "", nil, 0)
	row("Docker daemon restart to kubelet /healthz (s)", f2(median(r.restartKubelet)), "", "", nil, 0)
	row("dk8s ps (s)", fmt.Sprintf("%.3f", median(r.ps)), "", "", nil, 0)

	// Like with like: the control plane and everything that keeps it
	// running, each way: Docker (dockerd, its containerd, the shims of the
	// four containers) for dk8s; kubelet, its containerd, the shims and the
	// pods' pause processes for static pods.
	cpOf := func(node, shims, static Memory) (float64, float64) {
		return node.Sum(controlPlane...) + node.Sum("dockerd", dockerRT) + shims.Sum(controlPlane...),
			static.Sum(controlPlane...) + static.Sum("kubelet", "containerd", runtimeShims, "pause")
	}
	dkCP, stCP := cpOf(r.node, r.nodeShims, r.static)
	dkCPRSS, stCPRSS := cpOf(r.nodeRSS, r.nodeShimsRSS, r.staticRSS)
	fmt.Printf(rowFormat, fmt.Sprintf("idle memory, median of %d readings (MiB)", samples), "dk8s", "static", "ratio", "TARGET", "MET")
	row("control plane and its supervisors, PSS", fmt.Sprintf("%.0f", dkCP), fmt.Sprintf("%.0f", stCP), x2(dkCP/stCP), nil, 0)
	row("control plane and its supervisors, RSS", fmt.Sprintf("%.0f", dkCPRSS), fmt.Sprintf("%.0f", stCPRSS), x2(dkCPRSS/stCPRSS), nil, 0)
	row("whole node, default profile, PSS", fmt.Sprintf("%.0f", r.node.Total()), "", "", nil, 0)
	row("whole node, default profile, RSS", fmt.Sprintf("%.0f", r.nodeRSS.Total()), "", "", nil, 0)
	row("whole node, default profile, anonymous", fmt.Sprintf("%.0f", r.nodeAnon.Total()), "", "", nil, 0)
	fmt.Println("(both profiles, in a 1 GiB machine, beside the 550 MiB target: BenchmarkProfiles, at the end of make bench)")

	fmt.Printf("memory, dk8s node (PSS, MiB): %s; total %.0f\n", r.node, r.node.Total())
	missing := []string{}
	for _, p := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "containerd",
		"csr-approver", "etcd-snapshotter", "kube-proxy", "coredns", "flanneld", "dockerd", dockerRT, dockerShims, runtimeShims} {
		if _, ok := r.node[p]; !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		fmt.Printf("  not found in the node, so not counted: %s\n", strings.Join(missing, ", "))
	}
	fmt.Printf("memory, static pods (PSS, MiB): %s; total %.0f\n", r.static, r.static.Total())
	fmt.Println("floor = the same four containers, images and flags made with a bare `docker run` sequence; ratio = dk8s / floor (1 is the floor)")
	fmt.Println("static pods = the same images and flags as kubelet static pods (the runtime up and holding the images before the clock starts)")
	fmt.Println("memory: the processes found from dk8s's labelled containers (their Docker shims and all below them: the control plane, helpers, kubelet, the pod runtime and pods), dockerd and Docker's containerd counted whole; static pods: kubelet, its containerd, their shims and pods")
	fmt.Println("PSS = each page split among the processes mapping it, program text included, so the sum counts a page once; RSS counts a shared page in each process, so its sum is more;")
	fmt.Println("anonymous = the processes' own pages (heap, stacks): what free(1)'s used column grows by (free counts program text as buff/cache)")
}
