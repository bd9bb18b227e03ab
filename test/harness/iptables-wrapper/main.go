// Command iptables-wrapper gives a container that programs the host's
// firewall the iptables mode its host uses, as upstream's kube-proxy
// (distroless-iptables) and flannel images do with kubernetes-sigs'
// iptables-wrapper: iptables 1.8 comes in two modes, legacy (the kernel's
// iptables API) and nft (nftables under iptables' syntax), whose rules do
// not mix, and an image cannot know which one its host's kubelet used.
//
// The harness's kube-proxy and flannel images carry Debian's iptables
// package (both xtables-legacy-multi and xtables-nft-multi), with iptables,
// iptables-save, iptables-restore and their ip6tables twins linked to this
// program. Its first run decides the mode:
//
//  1. nft, when the kubelet's chains (KUBE-IPTABLES-HINT, or the older
//     KUBE-KUBELET-CANARY) are in nft's mangle table, IPv4 or IPv6;
//  2. else legacy, when they are among legacy's rules (read whole:
//     asking legacy for the mangle table alone would make the kernel
//     create it);
//  3. else nft, as upstream's wrapper and iptables' own default do.
//
// It then links those names to xtables-MODE-multi, so that later calls go
// straight there, and runs the command it was called as. Where it cannot
// relink (a read-only root), it runs the mode's binary for this call and
// decides again on the next.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
)

// names are the commands linked to this program.
var names = []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"}

var kubeletChains = regexp.MustCompile(`(?m)^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY) `)

func main() {
	self, err := os.Executable()
	if err != nil {
		// No /proc (a chroot): the path it was called by.
		if self, err = exec.LookPath(os.Args[0]); err != nil {
			fail(err)
		}
	}
	dir := filepath.Dir(self)
	name := filepath.Base(os.Args[0])
	if len(os.Args) == 2 && os.Args[1] == "install" {
		// iptables-wrapper install: link the names in its directory to it.
		if err := link(dir, filepath.Base(self)); err != nil {
			fail(err)
		}
		return
	}
	if !known(name) {
		fail(fmt.Errorf("called as %q: run it as one of %v (or with 'install' to link them)", name, names))
	}
	mode := detect(dir)
	multi := "xtables-" + mode + "-multi"
	if err := link(dir, multi); err != nil {
		fmt.Fprintf(os.Stderr, "iptables-wrapper: cannot link iptables to %s (%v); running it for this call only\n", multi, err)
	}
	cmd := exec.Command(filepath.Join(dir, multi), append([]string{name}, os.Args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			os.Exit(ee.ExitCode())
		}
		fail(err)
	}
}

func known(name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

// detect is the mode the host's kubelet left its chains in.
func detect(dir string) string {
	save := func(mode string, args ...string) []byte {
		var out bytes.Buffer
		cmd := exec.Command(filepath.Join(dir, "xtables-"+mode+"-multi"), args...)
		cmd.Stdout = &out
		_ = cmd.Run() // a mode the kernel lacks has no rules to find
		return out.Bytes()
	}
	for _, s := range []string{"iptables-save", "ip6tables-save"} {
		if kubeletChains.Match(save("nft", s, "-t", "mangle")) {
			return "nft"
		}
	}
	for _, s := range []string{"iptables-save", "ip6tables-save"} {
		if kubeletChains.Match(save("legacy", s)) {
			return "legacy"
		}
	}
	return "nft"
}

// link points each of names in dir at target (a name in dir), replacing
// each link atomically.
func link(dir, target string) error {
	for _, n := range names {
		tmp := filepath.Join(dir, "."+n+".tmp")
		_ = os.Remove(tmp)
		if err := os.Symlink(target, tmp); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, n)); err != nil {
			_ = os.Remove(tmp)
			return err
		}
	}
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "iptables-wrapper:", err)
	os.Exit(1)
}
