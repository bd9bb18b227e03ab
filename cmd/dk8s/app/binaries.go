package app

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/spf13/pflag"

	"github.com/dk8s/dk8s/pkg/host"
	"github.com/dk8s/dk8s/pkg/mirror"
)

// addBinaryMirrorFlag adds --binary-mirror, defaulting to
// $DK8S_BINARY_MIRROR; "" leaves the choice to --mirror (binaryMirrors).
func addBinaryMirrorFlag(fl *pflag.FlagSet, list *string) {
	fl.StringVar(list, "binary-mirror", envOr("DK8S_BINARY_MIRROR", ""),
		"binary mirrors for kubelet and kubectl, in order, comma-separated: names below or base URLs (env DK8S_BINARY_MIRROR; default: those --mirror implies)")
}

// binaryMirrors are the binary mirrors list names, or those the image
// mirrors imply when it is empty.
func binaryMirrors(list string, images []mirror.Mirror) ([]mirror.BinaryMirror, error) {
	if strings.TrimSpace(list) == "" {
		return mirror.ImpliedBinary(images), nil
	}
	return mirror.ParseBinaryList(list)
}

// binaryMirrorHelp lists the binary mirror catalogue and what each image
// mirror implies, for a command's --help.
func binaryMirrorHelp() string {
	var b strings.Builder
	b.WriteString(`Binary mirrors (--binary-mirror), tried in order per file, each file checked
against the sha256 images.lock pins for it; they keep dl.k8s.io's paths
(BASE/release/vX.Y.Z/bin/linux/ARCH/NAME):
`)
	for _, m := range mirror.BinaryCatalogue() {
		fmt.Fprintf(&b, "  %-23s %s\n  %-23s %s\n", m.Name, m.Base, "", m.About)
	}
	b.WriteString("  http(s)://HOST/PATH     your own server, laid out the same way\n")
	b.WriteString("Without --binary-mirror, --mirror implies them:\n")
	b.WriteString(mirror.ImpliedBinaryHelp())
	b.WriteString("\n  --mirror by address       upstream\n")
	return b.String()
}

// binaryView renders Fetch's events on w: a line per step, and on a
// terminal a line that counts the bytes as they come.
type binaryView struct {
	w    io.Writer
	tty  bool
	mu   sync.Mutex
	live bool // a progress line is drawn and not yet ended
}

func newBinaryView(w io.Writer) *binaryView {
	return &binaryView{w: w, tty: isTerminal(w)}
}

func (v *binaryView) event(e host.BinaryEvent) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if e.Phase == host.BinaryBytes {
		if v.tty {
			fmt.Fprintf(v.w, "\r\x1b[K  %s", e)
			v.live = true
		}
		return
	}
	if v.live {
		fmt.Fprint(v.w, "\r\x1b[K")
		v.live = false
	}
	mark := "  "
	switch e.Phase {
	case host.BinaryRetry, host.BinaryFallback:
		mark = color(v.tty, "33", "! ")
	case host.BinaryDone, host.BinaryPresent:
		mark = color(v.tty, "32", "✓ ")
	}
	fmt.Fprintln(v.w, mark+e.String())
}
