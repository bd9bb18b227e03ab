package integration

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

// BenchmarkJoin times what issue 10 asks of 'make bench': from 'dk8s join'
// on a fresh machine (its node images pulled through the mirror, verified,
// loaded) to its node Ready as the control plane sees it. Each round is a
// new machine; the control plane is made once.
//
//	make bench   (or: go test -run '^$' -bench Join -benchtime 3x ./test/integration/)
func BenchmarkJoin(b *testing.B) {
	cp := startMachine(b, "dk8s-bench-cp")
	for _, args := range [][]string{
		{"pull", "--mirror", machineFlatMirror},
		{"start", "--kubelet-binary", machineKubelet, "--mirror", machinePathMirror},
	} {
		if r := cp.dk8s(b, args...); r.code != 0 {
			b.Fatalf("dk8s %s on the control plane:\n%s", strings.Join(args, " "), r)
		}
	}
	kubectl := adminKubectl(b, cp)
	r := cp.dk8s(b, "token", "create", "--print-join-command")
	join, _ := joinCommands(r.stdout)
	if join == nil {
		b.Fatalf("no join command:\n%s", r)
	}
	join = append(join, "--kubelet-binary", machineKubelet, "--mirror", machinePathMirror)
	var rounds []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		name := fmt.Sprintf("dk8s-bench-w%d", i)
		w := startMachine(b, name)
		b.StartTimer()
		start := time.Now()
		if r := w.dk8s(b, join...); r.code != 0 {
			b.Fatalf("join:\n%s", r)
		}
		if !waitFor(3*time.Minute, func() bool { return nodeReady(kubectl, name) }) {
			b.Fatalf("%s is not Ready", name)
		}
		took := time.Since(start).Seconds()
		b.StopTimer()
		rounds = append(rounds, took)
		fmt.Fprintf(os.Stderr, "bench: join round %d of %d: %s Ready %.2fs after dk8s join began\n", i+1, b.N, name, took)
	}
	fmt.Printf("\ndk8s join on a fresh machine (node images pulled through the mirror, verified, loaded) to its node Ready, as the control plane sees it: %d rounds\n", len(rounds))
	med := printRounds("join to node Ready", rounds, 6)
	b.ReportMetric(med, "s-median/join-to-Ready")
}

// printRounds prints the median of rounds (seconds) beside its target and
// every round, sorted, and returns the median.
func printRounds(what string, rounds []float64, target float64) float64 {
	s := append([]float64(nil), rounds...)
	sort.Float64s(s)
	med := medianOf(s)
	met := "no"
	if med <= target {
		met = "yes"
	}
	var list []string
	for _, x := range s {
		list = append(list, fmt.Sprintf("%.2f", x))
	}
	fmt.Printf("%-40s median %6.2f s   TARGET <= %g s   MET %-3s  (rounds, sorted: %s)\n", what, med, target, met, strings.Join(list, " "))
	return med
}

func medianOf(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
