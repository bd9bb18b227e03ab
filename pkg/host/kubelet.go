package host

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"github.com/dk8s/dk8s/internal/atomicfile"
	"github.com/dk8s/dk8s/pkg/images"
)

// FindKubelet returns a kubelet that fits the control plane of rel, and its
// version: given (--kubelet-binary) when set, else one on the PATH, else one
// downloaded from the lock's URL into dir/bin and checked against its
// sha256. A kubelet newer than the apiserver, or more than three minors
// older, is refused: that is Kubernetes' skew policy.
func FindKubelet(ctx context.Context, r Runner, given, dir string, rel *images.Release) (string, string, error) {
	src := given
	if src == "" {
		if p, err := exec.LookPath("kubelet"); err == nil {
			src = p
		}
	}
	if src == "" {
		src = filepath.Join(dir, "bin", "kubelet")
		if err := downloadKubelet(ctx, rel, src); err != nil {
			return "", "", err
		}
	}
	version, err := checkKubeletVersion(ctx, r, src, rel.Kubernetes)
	return src, version, err
}

// FetchKubelet brings the release's kubelet into dir/bin, as `dk8s pull`
// does beside the images, when the lock pins its sha256 for this platform.
// It reports false, with no error, when the lock pins none: start then needs
// --kubelet-binary or a kubelet on the PATH.
func FetchKubelet(ctx context.Context, dir string, rel *images.Release) (bool, error) {
	for _, b := range rel.Binaries {
		if b.Name == "kubelet" && b.SHA256[runtime.GOOS+"/"+runtime.GOARCH] != "" {
			return true, downloadKubelet(ctx, rel, filepath.Join(dir, "bin", "kubelet"))
		}
	}
	return false, nil
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

// downloadKubelet fetches the lock's kubelet for this platform into dst,
// unless dst already holds it, and keeps it only when the lock pins its
// sha256 and the download matches.
func downloadKubelet(ctx context.Context, rel *images.Release, dst string) error {
	var bin *images.Binary
	for i := range rel.Binaries {
		if rel.Binaries[i].Name == "kubelet" {
			bin = &rel.Binaries[i]
		}
	}
	if bin == nil {
		return fmt.Errorf("no kubelet on this host and none in the lock for %s: pass --kubelet-binary", rel.Kubernetes)
	}
	platform := runtime.GOOS + "/" + runtime.GOARCH
	want := bin.SHA256[platform]
	if have, err := os.ReadFile(dst); err == nil && want != "" && fmt.Sprintf("%x", sha256.Sum256(have)) == want {
		return nil // downloaded before, and still what the lock pins
	}
	url := strings.NewReplacer("{os}", runtime.GOOS, "{arch}", runtime.GOARCH).Replace(bin.URL)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("downloading kubelet from %s: %w; pass --kubelet-binary on a machine without access", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("downloading kubelet from %s: HTTP %d", url, resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 512<<20))
	if err != nil {
		return err
	}
	sum := fmt.Sprintf("%x", sha256.Sum256(data))
	if want == "" {
		return fmt.Errorf("the lock pins no sha256 for kubelet %s on %s, so the download from %s cannot be trusted: pass --kubelet-binary, or record the sum in images.lock", rel.Kubernetes, platform, url)
	}
	if sum != want {
		return fmt.Errorf("kubelet from %s has sha256 %s, but images.lock pins %s: refusing it", url, sum, want)
	}
	return atomicfile.Write(dst, data, 0o755)
}
