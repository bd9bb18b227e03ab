package integration

import (
	"fmt"
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
	var total time.Duration
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
		total += time.Since(start)
		b.StopTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/join-to-Ready")
}
