package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/dk8s/dk8s/pkg/images"
)

// FindKubelet returns a kubelet that fits the control plane of rel, and its
// version: given (--kubelet-binary) when set, else one on the PATH, else the
// lock's, brought into dir/bin through f's binary mirrors (nil: dl.k8s.io)
// and checked against its sha256. A kubelet newer than the apiserver, or
// more than three minors older, is refused: that is Kubernetes' skew policy.
func FindKubelet(ctx context.Context, r Runner, given, dir string, rel *images.Release, f *Fetcher) (string, string, error) {
	src := given
	if src == "" {
		if p, err := exec.LookPath("kubelet"); err == nil {
			src = p
		}
	}
	if src == "" {
		if f == nil {
			f = &Fetcher{}
		}
		got, err := f.Fetch(ctx, rel, "kubelet", filepath.Join(dir, "bin", "kubelet"))
		switch {
		case errors.Is(err, ErrUnpinned):
			return "", "", fmt.Errorf("no kubelet on this host, and %w: pass --kubelet-binary with one you brought, or record its sum in images.lock", err)
		case err != nil:
			// Pinned, but no mirror served it (the error says what to
			// do): recording a sum that is there already mends nothing.
			return "", "", fmt.Errorf("no kubelet on this host, and %w; or pass --kubelet-binary with one you brought", err)
		}
		src = got.Path
	}
	if err := checkLoader(src); err != nil {
		return "", "", err
	}
	version, err := checkKubeletVersion(ctx, r, src, rel.Kubernetes)
	return src, version, err
}

// checkLoader tells whether this host has the dynamic loader the binary
// at path names: dl.k8s.io's kubelet is linked against glibc, and on a
// host without glibc's loader (Alpine's musl) its exec fails with a bare
// "no such file or directory".
func checkLoader(path string) error {
	loader, err := elfLoader(path)
	if err != nil || loader == "" {
		return nil // static, or no ELF binary (a wrapper script): running it tells
	}
	if _, err := os.Stat(loader); err != nil {
		return fmt.Errorf("%s is linked dynamically against glibc, and this host has not its loader %s (a musl host, such as Alpine): install it (Alpine: apk add gcompat), or pass --kubelet-binary with a kubelet built statically", path, loader)
	}
	return nil
}

var kubeletVersionRE = regexp.MustCompile(`Kubernetes v1\.(\d+)\.(\d+)`)

// checkKubeletVersion asks the kubelet at path its version and holds it
// against the apiserver's, want.
func checkKubeletVersion(ctx context.Context, r Runner, path, want string) (string, error) {
	out, err := r.Run(ctx, nil, path, "--version")
	if err != nil {
		return "", fmt.Errorf("running %s --version: %w", path, err)
	}
	m := kubeletVersionRE.FindStringSubmatch(string(out))
	var wMinor, wPatch, minor, patch int
	if _, err := fmt.Sscanf(want, "v1.%d.%d", &wMinor, &wPatch); err != nil || m == nil {
		return "", fmt.Errorf("%s reports %q: not a kubelet version dk8s understands", path, strings.TrimSpace(string(out)))
	}
	fmt.Sscanf(m[1]+" "+m[2], "%d %d", &minor, &patch)
	got := fmt.Sprintf("v1.%d.%d", minor, patch)
	switch {
	case minor > wMinor || (minor == wMinor && patch > wPatch):
		return "", fmt.Errorf("kubelet %s at %s is newer than the apiserver %s; Kubernetes forbids that: pass --kubelet-binary with a %s kubelet", got, path, want, want)
	case minor < wMinor-3:
		return "", fmt.Errorf("kubelet %s at %s is more than three minor versions older than the apiserver %s: pass --kubelet-binary with a %s kubelet", got, path, want, want)
	}
	return got, nil
}
