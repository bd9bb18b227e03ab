package integration

import (
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// Kubernetes' own conformance suite on dk8s clusters made as a user makes
// them: e2e.test and ginkgo of the harness's release and every image the
// tests pull, built from source by the harness (test/harness/build-e2e.sh,
// e2e-images.sh) and served under their canonical names by the
// path-preserving mirror the nodes are started with.
//
// By default (make test, CI) the part that guards what dk8s itself sets up
// runs on one node: conformanceCIFocus. DK8S_CONFORMANCE=full (make
// conformance) runs every conformance test that can apply, on one node and
// then on three machines (a control plane and two workers joined by
// token), the [Serial] ones after the rest. Each run writes ginkgo's log, the
// JUnit reports and summary.txt under DK8S_CONFORMANCE_DIR (default
// conformance-results/ in the source tree), one directory per cluster.

// conformanceCIFocus is the part of the suite CI runs on every submission,
// less the tests labelled Slow: the tests of what dk8s sets up itself: pod
// networking, Services and DNS
// (flannel, kube-proxy, CoreDNS, the service range kept local), the API
// server and its machinery, RBAC and service accounts (the PKI, the
// issuer), webhooks and aggregation (the host-network API server reaching
// Service and pod addresses), and the kubelet's side of pods (exec, logs,
// probes, hooks, downward API, the verbs of the node agents).
const conformanceCIFocus = `\[sig-network\]|\[sig-api-machinery\]|\[sig-auth\]|\[sig-node\] (Pods|Container Lifecycle Hook|Probing|Kubelet|Downward API|Variable Expansion|Container Runtime|PreStop)|\[sig-cli\] Kubectl client (Kubectl logs|Kubectl describe|Kubectl expose|Proxy server|Kubectl label)`

// conformanceCILeftOut are tests of that part CI leaves to make conformance:
// each waits minutes by design (a probe watched for four minutes not to
// restart a container, 500 updates of one pod) and guards the kubelet's own
// logic rather than anything dk8s sets up.
const conformanceCILeftOut = `should \*not\* be restarted|issue 500 podspec updates`

// conformanceProcs is how many ginkgo processes run the parallel part: the
// tests mostly wait (for pods, for timeouts), so more processes than cores
// shorten the run without loading the machine.
const conformanceProcs = 8

// notApplicable is a conformance test that is not run on a cluster of this
// shape, and why: each reason names what the test needs that the cluster
// cannot give, so that a reviewer can check it.
type notApplicable struct{ pattern, reason string }

// oneNodeNotApplicable are not run on one node.
var oneNodeNotApplicable = []notApplicable{
	{`should have at least two untainted nodes`,
		"it fails by design with fewer than two schedulable nodes (test/e2e/architecture/conformance.go: 'Conformance requires at least two nodes'); it runs on three machines"},
	{`Daemon set should rollback without unnecessary restarts`,
		"it needs two schedulable nodes, to roll a DaemonSet back on one and not the other (test/e2e/apps/daemon_set.go asserts 'Conformance test suite needs a cluster with at least 2 nodes'); it runs on three machines"},
}

// runtimeNotApplicable lists the tests the nodes' container runtime cannot
// run, by the versions kubectl shows (containerd://1.6.20~ds1, ...): image
// volumes came in containerd 2.1 (KEP-4639); with an older one the kubelet
// asks for one and containerd, not knowing the field, fails to make the
// container ("failed to mkdir \"\"") until the test times out.
func runtimeNotApplicable(t *testing.T, kubectl, kubeconfig string) []notApplicable {
	t.Helper()
	out, err := exec.Command(kubectl, "--kubeconfig", kubeconfig, "get", "nodes", "-o", "jsonpath={.items[*].status.nodeInfo.containerRuntimeVersion}").CombinedOutput()
	if err != nil {
		t.Fatalf("the nodes' container runtimes: %v\n%s", err, out)
	}
	var old []string
	for _, v := range strings.Fields(string(out)) {
		ver, ok := strings.CutPrefix(v, "containerd://")
		var major, minor int
		fmt.Sscanf(strings.TrimPrefix(ver, "v"), "%d.%d", &major, &minor)
		if ok && (major < 2 || major == 2 && minor < 1) {
			old = append(old, ver)
		}
	}
	if len(old) == 0 {
		return nil
	}
	return []notApplicable{{`\[sig-node\] ImageVolume`,
		fmt.Sprintf("the nodes' containerd (%s, the host's own) has no image volumes, which came in containerd 2.1: it fails to make the container ('failed to mkdir \"\"')", strings.Join(slices.Compact(old), ", "))}}
}

// e2eSuite is the conformance suite the harness built.
type e2eSuite struct {
	version, dir, ginkgo, e2eTest, kubectl string
}

func conformanceSuite(t *testing.T) e2eSuite {
	t.Helper()
	if testLock == "" {
		t.Fatal("DK8S_TEST_LOCK is not set: run the integration tests with 'make test' or 'make conformance', which bring up the harness (test/harness/up.sh)")
	}
	cache := filepath.Dir(testLock)
	b, err := os.ReadFile(filepath.Join(cache, "e2e.dir"))
	if err != nil {
		t.Fatalf("the harness names no conformance suite (%v): bring it up with test/harness/up.sh, which builds it", err)
	}
	dir := strings.TrimSpace(string(b))
	s := e2eSuite{version: strings.TrimPrefix(filepath.Base(dir), "e2e-"), dir: dir, ginkgo: filepath.Join(dir, "ginkgo"), e2eTest: filepath.Join(dir, "e2e.test"), kubectl: filepath.Join(cache, "kubectl")}
	for _, f := range []string{s.ginkgo, s.e2eTest, s.kubectl} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("the conformance suite: %v (test/harness/up.sh builds it)", err)
		}
	}
	return s
}

func TestConformance(t *testing.T) {
	suite := conformanceSuite(t)
	full := os.Getenv("DK8S_CONFORMANCE") == "full"
	out := os.Getenv("DK8S_CONFORMANCE_DIR")
	if out == "" {
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		out = filepath.Join(wd, "..", "..", "conformance-results")
	}

	t.Run("one node", func(t *testing.T) {
		name := "dk8s-it-conf" // CI's; the full run's is its own, so the two can run side by side
		if full {
			name = "dk8s-it-conf-one"
		}
		cp := startMachine(t, name)
		cp.must(t, "pull", "--mirror", machineFlatMirror)
		cp.must(t, "start", "--kubelet-binary", machineKubelet, "--mirror", machinePathMirror)
		focus := conformanceCIFocus
		if full {
			focus = ""
		}
		kubeconfig := machineKubeconfig(t, cp)
		suite.run(t, kubeconfig, 1, filepath.Join(out, "one-node"), focus,
			slices.Concat(oneNodeNotApplicable, runtimeNotApplicable(t, suite.kubectl, kubeconfig)))
	})
	if !full {
		return
	}
	t.Run("three machines", func(t *testing.T) {
		cp := startMachine(t, "dk8s-it-conf-cp")
		w1 := startMachine(t, "dk8s-it-conf-w1")
		w2 := startMachine(t, "dk8s-it-conf-w2")
		cp.must(t, "pull", "--mirror", machineFlatMirror)
		cp.must(t, "start", "--kubelet-binary", machineKubelet, "--mirror", machinePathMirror)
		join, _ := joinCommands(cp.must(t, "token", "create", "--print-join-command").stdout)
		if join == nil {
			t.Fatal("token create --print-join-command printed no dk8s join line")
		}
		for _, w := range []*machine{w1, w2} {
			w.must(t, append(join, "--kubelet-binary", machineKubelet, "--mirror", machinePathMirror)...)
		}
		kubeconfig := machineKubeconfig(t, cp)
		suite.run(t, kubeconfig, 3, filepath.Join(out, "three-machines"), "", runtimeNotApplicable(t, suite.kubectl, kubeconfig))
	})
}

// run runs the conformance tests focus selects (all when empty) but those
// notApplicable names against the cluster of kubeconfig: the parallel ones
// with ginkgo, then the [Serial] ones alone. It writes out/summary.txt and
// fails t on any failed test.
func (s e2eSuite) run(t *testing.T, kubeconfig string, nodes int, out, focus string, skips []notApplicable) {
	t.Helper()
	if err := os.RemoveAll(out); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	patterns := make([]string, len(skips))
	for i, s := range skips {
		patterns[i] = s.pattern
	}
	skip := strings.Join(patterns, "|")
	args := func(report string) []string {
		return []string{"--provider=skeleton", "--kubeconfig=" + kubeconfig, "--kubectl-path=" + s.kubectl,
			fmt.Sprintf("--num-nodes=%d", nodes), "--disable-log-dump", "--report-dir=" + filepath.Join(out, report)}
	}
	// The suite's labels select: Conformance, and Serial for those that
	// must run alone.
	selection := func(prefix, labels string) []string {
		skips := skip
		var a []string
		if focus != "" {
			// CI's part: the [Slow] ones and those it leaves out take
			// minutes each.
			labels += " && !Slow"
			skips = strings.TrimPrefix(skip+"|"+conformanceCILeftOut, "|")
			a = append(a, prefix+"focus="+focus)
		}
		a = append(a, prefix+"label-filter="+labels)
		if skips != "" {
			a = append(a, prefix+"skip="+skips)
		}
		return a
	}
	start := time.Now()
	ginkgoArgs := append([]string{fmt.Sprintf("--procs=%d", conformanceProcs), "--timeout=3h", "--no-color"},
		selection("--", "Conformance && !Serial")...)
	runLogged(t, filepath.Join(out, "parallel.log"), s.dir, s.ginkgo, append(append(ginkgoArgs, s.e2eTest, "--"), args("parallel")...)...)
	parallel := time.Since(start)
	start = time.Now()
	serialArgs := append([]string{"--ginkgo.no-color", "--ginkgo.timeout=3h"}, selection("--ginkgo.", "Conformance && Serial")...)
	runLogged(t, filepath.Join(out, "serial.log"), s.dir, s.e2eTest, append(serialArgs, args("serial")...)...)
	serial := time.Since(start)

	cases := append(readJUnit(t, filepath.Join(out, "parallel")), readJUnit(t, filepath.Join(out, "serial"))...)
	sum := summarize(cases, skips, focus)
	sum.title = fmt.Sprintf("Kubernetes %s conformance on a dk8s cluster of %d node(s)", s.version, nodes)
	sum.durations = fmt.Sprintf("parallel part %s (%d ginkgo processes), serial part %s", parallel.Round(time.Second), conformanceProcs, serial.Round(time.Second))
	text := sum.String()
	if err := os.WriteFile(filepath.Join(out, "summary.txt"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("conformance on %d node(s), reports in %s:\n%s", nodes, out, text)
	if len(sum.failed) > 0 || sum.passed == 0 || sum.unexplained() > 0 {
		t.Errorf("%d conformance test(s) failed, %d passed, %d not run for no reason given (ginkgo's logs: %s)", len(sum.failed), sum.passed, sum.unexplained(), out)
	}
}

// runLogged runs a program of the suite in dir with its output in log; a
// failed test makes ginkgo exit non-zero, which the JUnit report tells
// apart, so only a run that wrote no report is an error here.
func runLogged(t *testing.T, log, dir, prog string, args ...string) {
	t.Helper()
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(prog, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Run(); err != nil {
		t.Logf("%s exited: %v (its log: %s)", filepath.Base(prog), err, log)
	}
}

// junitCase is one spec of the JUnit report the e2e framework writes.
type junitCase struct {
	Name    string  `xml:"name,attr"`
	Status  string  `xml:"status,attr"`
	Time    float64 `xml:"time,attr"`
	Skipped *struct {
		Message string `xml:"message,attr"`
	} `xml:"skipped"`
	Failure *struct {
		Message string `xml:"message,attr"`
	} `xml:"failure"`
}

func readJUnit(t *testing.T, dir string) []junitCase {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "junit*.xml"))
	if len(files) == 0 {
		t.Fatalf("the suite wrote no JUnit report in %s: see the log beside it", dir)
	}
	var all []junitCase
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Suites []struct {
				Cases []junitCase `xml:"testcase"`
			} `xml:"testsuite"`
		}
		if err := xml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, s := range doc.Suites {
			all = append(all, s.Cases...)
		}
	}
	return all
}

type conformanceSummary struct {
	total, passed int
	failed        []string
	skippedByTest []string // the test skipped itself, with its message
	notApplicable map[string][]string
	notSelected   int // outside the part this run was asked for
	title         string
	durations     string
	slowest       []junitCase
	focus         string
}

// summarize counts the conformance specs of cases: a spec the run's
// exclusions matched is listed under its reason; one the focus left out is
// counted apart; the rest passed, failed or skipped themselves.
func summarize(cases []junitCase, skips []notApplicable, focus string) conformanceSummary {
	sum := conformanceSummary{notApplicable: map[string][]string{}, focus: focus}
	// inCI: whether CI's part holds the spec named.
	inCI := func(string) bool { return true }
	if focus != "" {
		focusRE, leftOut := regexp.MustCompile(focus), regexp.MustCompile(conformanceCILeftOut)
		inCI = func(name string) bool {
			return focusRE.MatchString(name) && !leftOut.MatchString(name) && !strings.Contains(name, "[Slow]")
		}
	}
	excluders := make([]*regexp.Regexp, len(skips))
	for i, s := range skips {
		excluders[i] = regexp.MustCompile(s.pattern)
	}
	seen := map[string]bool{}
	var ran []junitCase
	for _, c := range cases {
		name := strings.TrimPrefix(c.Name, "[It] ")
		failed := c.Status == "failed" || c.Status == "timedout" || c.Status == "panicked" || c.Status == "interrupted"
		if !strings.Contains(name, "[Conformance]") {
			// The suite's own nodes ([SynchronizedBeforeSuite], the log
			// check after it): a failure there is a failure of the run.
			if failed {
				sum.failed = append(sum.failed, name+"\n      "+failureOf(c))
			}
			continue
		}
		if c.Status != "passed" && !failed && seen[name] {
			continue // the [Serial] report lists the parallel part's specs as skipped, and the other way round
		}
		excluded := ""
		for i, re := range excluders {
			if re.MatchString(name) {
				excluded = skips[i].reason
			}
		}
		switch {
		case c.Status == "passed":
			sum.passed++
			ran = append(ran, c)
		case failed:
			sum.failed = append(sum.failed, name+"\n      "+failureOf(c))
			ran = append(ran, c)
		case excluded != "":
			if !seen[name] {
				sum.notApplicable[excluded] = append(sum.notApplicable[excluded], name)
			}
		case !inCI(name):
			if !seen[name] {
				sum.notSelected++
			}
		case c.Skipped != nil && c.Skipped.Message != "skipped":
			// Ginkgo's report says "skipped - WHY" of a spec that skipped
			// itself, and "skipped" of one the run's filters left out.
			sum.skippedByTest = append(sum.skippedByTest, name+"\n      "+firstLine(strings.TrimPrefix(c.Skipped.Message, "skipped - ")))
		}
		seen[name] = true
	}
	sum.total = len(seen)
	sort.Slice(ran, func(i, j int) bool { return ran[i].Time > ran[j].Time })
	if len(ran) > 5 {
		ran = ran[:5]
	}
	sum.slowest = ran
	return sum
}

func failureOf(c junitCase) string {
	if c.Failure == nil {
		return c.Status
	}
	return firstLine(c.Failure.Message)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// unexplained counts the conformance specs that neither ran nor were
// left out with a reason: none, in a run that went as asked.
func (s conformanceSummary) unexplained() int {
	n := s.total - s.passed - len(s.failed) - len(s.skippedByTest) - s.notSelected
	for _, names := range s.notApplicable {
		n -= len(names)
	}
	return n
}

func (s conformanceSummary) String() string {
	var b strings.Builder
	na := 0
	for _, names := range s.notApplicable {
		na += len(names)
	}
	fmt.Fprintf(&b, "%s\n%d conformance tests in the suite: %d passed, %d failed, %d skipped by the test itself, %d not applicable here",
		s.title, s.total, s.passed, len(s.failed), len(s.skippedByTest), na)
	if s.focus != "" {
		fmt.Fprintf(&b, ", %d outside the part chosen for CI", s.notSelected)
	}
	if n := s.unexplained(); n > 0 {
		fmt.Fprintf(&b, ", and %d not run for no reason given here", n)
	}
	fmt.Fprintf(&b, "\n%s\n", s.durations)
	if len(s.failed) > 0 {
		b.WriteString("failed:\n")
		for _, f := range s.failed {
			fmt.Fprintf(&b, "  - %s\n", f)
		}
	}
	if len(s.skippedByTest) > 0 {
		b.WriteString("skipped by the test itself:\n")
		for _, f := range s.skippedByTest {
			fmt.Fprintf(&b, "  - %s\n", f)
		}
	}
	reasons := make([]string, 0, len(s.notApplicable))
	for r := range s.notApplicable {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Fprintf(&b, "not applicable here, because %s:\n", r)
		for _, n := range s.notApplicable[r] {
			fmt.Fprintf(&b, "  - %s\n", n)
		}
	}
	if len(s.slowest) > 0 {
		b.WriteString("slowest:\n")
		for _, c := range s.slowest {
			fmt.Fprintf(&b, "  %6.1fs %s\n", c.Time, strings.TrimPrefix(c.Name, "[It] "))
		}
	}
	return b.String()
}
