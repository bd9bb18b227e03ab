package app

import (
	"bytes"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/doctor"
)

func TestDoctorRefusesADirectoryWithNoCluster(t *testing.T) {
	dir := t.TempDir()
	stdout, _, err := run(t, nil, "doctor", "--dir", dir)
	if err == nil || !strings.Contains(err.Error(), dir+" holds no dk8s cluster") || stdout != "" {
		t.Errorf("doctor on an empty directory: error %v, output %q", err, stdout)
	}
	if _, _, err := run(t, nil, "doctor", "-o", "yaml", "--dir", dir); err == nil || !strings.Contains(err.Error(), "table, json") {
		t.Errorf("doctor -o yaml: %v", err)
	}
}

func TestDoctorReport(t *testing.T) {
	r := doctor.Report{
		Findings: []doctor.Finding{
			{Check: "swap", Severity: doctor.Problem, Problem: "swap is on (/swapfile)", Fix: "swapoff -a"},
			{Check: "certificates", Severity: doctor.Warning, Problem: "expiring within 30 days: admin (in 9d)", Fix: "dk8s certs renew"},
		},
		Checked: []string{"swap", "certificates"},
		Skipped: map[string]string{"taints": "no admin kubeconfig", "clock": "no admin kubeconfig"},
	}
	var b bytes.Buffer
	if err := printReport(&b, "table", r); err != nil {
		t.Fatal(err)
	}
	want := `PROBLEM  swap: swap is on (/swapfile)
         fix: swapoff -a
WARNING  certificates: expiring within 30 days: admin (in 9d)
         fix: dk8s certs renew
unhealthy: 1 problem, 1 warning in 2 checks; not checked: clock, taints (no admin kubeconfig)
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := printReport(&b, "table", doctor.Report{Checked: []string{"swap"}}); err != nil || b.String() != "healthy: 1 checks passed\n" {
		t.Errorf("a healthy node: %q %v", b.String(), err)
	}
	b.Reset()
	if err := printReport(&b, "json", doctor.Report{Checked: []string{"swap"}}); err != nil || !strings.Contains(b.String(), `"healthy": true`) || !strings.Contains(b.String(), `"findings": []`) {
		t.Errorf("json of a healthy node: %s %v", b.String(), err)
	}
}
