package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestModes runs the wrapper, built, beside stand-in xtables binaries that
// print the rules a host of each kind has and say which mode ran a call.
func TestModes(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "iptables-wrapper")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	hint := "*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n"
	canary := "*mangle\n:KUBE-KUBELET-CANARY - [0:0]\nCOMMIT\n"
	docker := "*filter\n:DOCKER-USER - [0:0]\nCOMMIT\n"
	for _, c := range []struct {
		name              string
		nft, legacy, nft6 string // what each mode's iptables-save prints
		want              string
	}{
		{name: "kubelet on nft", nft: hint, legacy: docker, want: "nft"},
		{name: "kubelet on legacy", nft: docker, legacy: hint, want: "legacy"},
		{name: "an older kubelet's canary on legacy", legacy: canary, want: "legacy"},
		{name: "IPv6 only on nft", nft6: hint, legacy: hint, want: "nft"},
		{name: "no kubelet yet", nft: docker, legacy: docker, want: "nft"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			w := filepath.Join(dir, "iptables-wrapper")
			b, _ := os.ReadFile(bin)
			if err := os.WriteFile(w, b, 0o755); err != nil {
				t.Fatal(err)
			}
			for mode, rules := range map[string][2]string{"nft": {c.nft, c.nft6}, "legacy": {c.legacy, ""}} {
				script := "#!/bin/sh\ncase \"$1 $*\" in\n" +
					"iptables-save*) printf '" + rules[0] + "';;\n" +
					"ip6tables-save*) printf '" + rules[1] + "';;\n" +
					"*) echo \"" + mode + " ran $*\";;\nesac\n"
				if err := os.WriteFile(filepath.Join(dir, "xtables-"+mode+"-multi"), []byte(script), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if out, err := exec.Command(w, "install").CombinedOutput(); err != nil {
				t.Fatalf("install: %v\n%s", err, out)
			}
			out, err := exec.Command(filepath.Join(dir, "iptables"), "-w", "-L").CombinedOutput()
			if err != nil {
				t.Fatalf("iptables -L: %v\n%s", err, out)
			}
			if got := strings.TrimSpace(string(out)); got != c.want+" ran iptables -w -L" {
				t.Errorf("the first call ran %q, want %s's iptables -w -L", got, c.want)
			}
			for _, n := range names {
				if got, _ := os.Readlink(filepath.Join(dir, n)); got != "xtables-"+c.want+"-multi" {
					t.Errorf("after the first call %s links to %q, want xtables-%s-multi", n, got, c.want)
				}
			}
		})
	}
}
