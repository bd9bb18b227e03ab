package dk8s

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering keeps pkg/ a library a node agent can import: no CLI
// framework in it, the moby client behind pkg/containers alone, host
// commands behind pkg/host alone, which knows nothing of pkg/bootstrap,
// pkg/pki free of any cluster's specifics, and pkg/token free of the rest
// of dk8s.
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./pkg/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, " ")
		for _, imp := range strings.Fields(imports) {
			if strings.HasPrefix(imp, "github.com/spf13/") {
				t.Errorf("%s imports %s: the CLI framework belongs in cmd/", pkg, imp)
			}
			if strings.HasPrefix(imp, "github.com/moby/moby/") && !strings.HasSuffix(pkg, "/pkg/containers") {
				t.Errorf("%s imports %s: only pkg/containers talks to the Engine client", pkg, imp)
			}
			if strings.HasSuffix(pkg, "/pkg/pki") && strings.HasPrefix(imp, "github.com/dk8s/dk8s/pkg/") {
				t.Errorf("%s imports %s: the PKI's mechanics know no cluster; the list of certificates is the caller's", pkg, imp)
			}
			if imp == "os/exec" && !strings.HasSuffix(pkg, "/pkg/host") {
				t.Errorf("%s imports os/exec: host commands go through pkg/host's Runner, so they are unit tested with a fake", pkg)
			}
			if strings.HasSuffix(pkg, "/pkg/token") && strings.HasPrefix(imp, "github.com/dk8s/dk8s/") {
				t.Errorf("%s imports %s: a joining host's agent imports pkg/token, which needs client-go alone", pkg, imp)
			}
			if strings.HasSuffix(pkg, "/pkg/host") && strings.HasPrefix(imp, "github.com/dk8s/dk8s/pkg/bootstrap") {
				t.Errorf("%s imports %s: the host side is given what it needs, not the cluster's configuration", pkg, imp)
			}
		}
	}
}
