package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dk8s/dk8s/pkg/bootstrap"
	"github.com/dk8s/dk8s/pkg/doctor"
	"github.com/dk8s/dk8s/pkg/host"
	"github.com/dk8s/dk8s/pkg/pki"
)

type doctorFlags struct {
	clusterFlags
	output string
}

func newDoctor(g *globals) *cobra.Command {
	f := &doctorFlags{}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Diagnose this node and say how to fix each thing found wrong",
		Long: `Diagnose the node on this host after the fact: the host (swap, IP forwarding,
br_netfilter, free disk), the node's runtime and kubelet (CRI on, the sandbox
image the release pulled, one cgroup driver, a resolv.conf for pods that
does not loop back into CoreDNS), the certificates, and, on a control plane,
what the cluster says (taints that leave pods Pending, DiskPressure, images
pods cannot pull through the mirrors, CoreDNS stopped on a loop, clock skew
with the apiserver). Each finding says what is wrong and the fix.

Exits non-zero when any finding is a problem; warnings (a certificate that
expires within 30 days) are listed and do not fail it, so monitoring can
run it.`,
		Example: "  dk8s doctor\n  dk8s doctor -o json | jq -r '.findings[] | .check + \": \" + .fix'",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runDoctor(cmd, g, f) },
	}
	f.add(cmd)
	cmd.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	return cmd
}

func runDoctor(cmd *cobra.Command, g *globals, f *doctorFlags) error {
	if err := checkOutput(f.output, "table", "json"); err != nil {
		return err
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	settings, err := bootstrap.ReadSettings(cfg.Dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s holds no dk8s cluster: name its directory with --dir", cfg.Dir)
		}
		return err
	}
	o := doctor.Options{
		Dir:      cfg.Dir,
		Expiries: func() ([]pki.Expiry, error) { return bootstrap.CertExpiries(cfg) },
		// A worker keeps only the cluster's CA; a control plane all of it.
		ControlPlane: !settings.IsWorker(),
		Runner:       host.Exec{},
		Ctr:          "ctr",
	}
	if p, err := exec.LookPath("ctr"); err == nil {
		o.Ctr = p
	}
	o.Pause = g.pauseOf(cfg)
	o.AgentErrors = func(ctx context.Context) map[string]string {
		engine, err := g.engine(ctx)
		if err != nil {
			return nil // Docker's own state is not this check's to judge
		}
		defer engine.Close()
		return bootstrap.AgentStartErrors(ctx, engine)
	}
	if cs, err := g.kube(cfg); err == nil {
		o.Kube, o.Kubeconfig = cs, cfg.AdminKubeconfig()
	} else if o.ControlPlane {
		// A control plane without its admin client cannot be judged
		// healthy: say why, as for an apiserver that does not answer.
		o.KubeErr, o.Kubeconfig = err, filepath.Join(cfg.Dir, "kubelet.conf")
	} else {
		// A worker: its clock against its apiserver's, with kubelet's
		// credentials; the cluster's state is the control plane's to judge.
		o.KubeSkip, o.Kubeconfig = err.Error(), filepath.Join(cfg.Dir, "kubelet.conf")
	}
	r := doctor.Run(cmd.Context(), o)
	if err := printReport(g.streams.Out, f.output, r); err != nil {
		return err
	}
	if !r.Healthy() {
		return ExitError{Code: 1}
	}
	return nil
}

// pauseOf is the sandbox image of the release cfg's cluster runs: the one
// its marker names (or --kubernetes-version), as the lock pins it; "" when
// the lock does not hold it.
func (g *globals) pauseOf(cfg bootstrap.Config) string {
	l, err := g.readLock()
	if err != nil {
		return ""
	}
	v := g.version
	if s, err := bootstrap.ReadSettings(cfg.Dir); err == nil && v == "" {
		v = s.KubernetesVersion
	}
	rel, err := l.Release(v)
	if err != nil {
		return ""
	}
	img, _ := rel.Image("pause")
	return img.Name
}

// printReport writes each finding as a line of its severity, check and
// problem, then its fix indented below (sentences too long for columns),
// then a summary line: "healthy: ..." or "unhealthy: ...".
func printReport(w io.Writer, output string, r doctor.Report) error {
	if output == "json" {
		if r.Findings == nil {
			r.Findings = []doctor.Finding{}
		}
		return writeJSON(w, struct {
			Healthy bool `json:"healthy"`
			doctor.Report
		}{r.Healthy(), r})
	}
	for _, fd := range r.Findings {
		fmt.Fprintf(w, "%-8s %s: %s\n         fix: %s\n", strings.ToUpper(string(fd.Severity)), fd.Check, fd.Problem, fd.Fix)
	}
	problems := 0
	for _, fd := range r.Findings {
		if fd.Severity == doctor.Problem {
			problems++
		}
	}
	byWhy := map[string][]string{}
	for c, why := range r.Skipped {
		byWhy[why] = append(byWhy[why], c)
	}
	var skipped []string
	for why, checks := range byWhy {
		slices.Sort(checks)
		skipped = append(skipped, strings.Join(checks, ", ")+" ("+why+")")
	}
	summary := fmt.Sprintf("healthy: %d checks passed", len(r.Checked))
	if problems > 0 {
		summary = fmt.Sprintf("unhealthy: %s, %s in %d checks", plural(problems, "problem"), plural(len(r.Findings)-problems, "warning"), len(r.Checked))
	} else if len(r.Findings) > 0 {
		summary = fmt.Sprintf("healthy: %d checks passed, with %s", len(r.Checked), plural(len(r.Findings), "warning"))
	}
	if len(skipped) > 0 {
		slices.Sort(skipped)
		summary += "; not checked: " + strings.Join(skipped, "; ")
	}
	_, err := fmt.Fprintln(w, summary)
	return err
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
