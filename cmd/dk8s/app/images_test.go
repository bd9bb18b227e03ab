package app

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dk8s/dk8s"
	"github.com/dk8s/dk8s/pkg/bundle"
	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/containers/containerstest"
	"github.com/dk8s/dk8s/pkg/images"
	"github.com/dk8s/dk8s/pkg/mirror"
)

func TestImagesShowsWhatDockerHas(t *testing.T) {
	lock, rel := noKubeletLock(t)
	fake := &containerstest.Engine{Images: map[string]containers.Image{}}
	// The first image as the lock has it, the second with other content
	// when the lock knows its digest, the rest absent.
	first, second := rel.Images[0], rel.Images[1]
	fake.Images[first.Name] = lockedImage(first)
	fake.Images[second.Name] = containers.Image{ID: "sha256:" + strings.Repeat("e", 64), Platform: "linux/amd64"}

	stdout, stderr, err := runFake(t, fake, "images", "--lock", lock)
	if err != nil || !strings.HasPrefix(stderr, "Kubernetes "+rel.Kubernetes+": "+rel.Pinning()+" by images.lock") {
		t.Fatalf("images: %v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != len(rel.Images)+1 || strings.Join(strings.Fields(lines[0]), " ") != "IMAGE PINNED PRESENT VERIFIED" {
		t.Fatalf("images:\n%s", stdout)
	}
	wantSecond := "unverified"
	if second.Known() {
		wantSecond = "MISMATCH"
	}
	for i, want := range [][]string{{first.Name, yesNo(first.Known()), "yes", verdict(first)}, {second.Name, yesNo(second.Known()), "yes", wantSecond}, {rel.Images[2].Name, yesNo(rel.Images[2].Known()), "no", "-"}} {
		if got := strings.Fields(lines[i+1]); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("row %d: %q, want %q", i+1, got, want)
		}
	}

	stdout, _, err = runFake(t, fake, "images", "--lock", lock, "--mirror", "aliyun")
	aliyun, _ := mirror.Parse("aliyun")
	lines = strings.Split(strings.TrimSpace(stdout), "\n")
	if err != nil || strings.Join(strings.Fields(lines[0]), " ") != "IMAGE ON MIRROR PINNED PRESENT VERIFIED" || !strings.HasPrefix(strings.Fields(lines[1])[1], aliyun.Prefix+"/") {
		t.Errorf("images --mirror aliyun: %v\n%s", err, stdout)
	}

	// flannel is docker.io's: Aliyun is not known to serve it, DaoCloud
	// keeps it on its docker.io mirror.
	flannel, _ := rel.Image("flannel")
	if line := strings.Join(strings.Fields(lineWith(stdout, flannel.Name)), " "); line != flannel.Name+" - (not served) no no -" {
		t.Errorf("images --mirror aliyun, flannel's row: %q", line)
	}
	stdout, _, err = runFake(t, fake, "images", "--lock", lock, "--mirror", "daocloud")
	if line := lineWith(stdout, flannel.Name); err != nil || !strings.Contains(line, " docker.m.daocloud.io/flannel/flannel:") {
		t.Errorf("images --mirror daocloud, flannel's row: %v, %q", err, line)
	}

	stdout, _, err = runFake(t, fake, "images", "--lock", lock, "-o", "json")
	var rows []map[string]any
	if err != nil || json.Unmarshal([]byte(stdout), &rows) != nil || len(rows) != len(rel.Images) {
		t.Errorf("images -o json: %v\n%s", err, stdout)
	}
}

func TestSaveNeedsEveryImage(t *testing.T) {
	lock, rel := noKubeletLock(t)
	out := filepath.Join(t.TempDir(), "k8s.tar")
	_, stderr, err := runFake(t, fakeHost(), "save", "--lock", lock, "-o", out)
	want := rel.Images[0].Name + " is not in Docker's image store: run 'dk8s pull' first"
	if err == nil || err.Error() != want {
		t.Errorf("save with no images: error %v, want %q", err, want)
	}
	if !strings.HasPrefix(stderr, "Saving "+itoa(len(rel.Images))+" images of Kubernetes "+rel.Kubernetes+"\n") {
		t.Errorf("save said %q", stderr)
	}
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 0 {
		t.Errorf("a failed save left %v", entries)
	}
}

func TestLoadRefusesWhatIsNoArchive(t *testing.T) {
	in := writeTemp(t, "k8s.tar", "not a tar file")
	fake := fakeHost()
	_, stderr, err := runFake(t, fake, "load", "-i", in)
	if err == nil {
		t.Error("load of a file that is no archive should fail")
	}
	if want := "Loading " + in + ", checked against the lock built into dk8s\n"; !strings.HasPrefix(stderr, want) {
		t.Errorf("load said %q, want %q first", stderr, want)
	}
	if m := fake.Mutations("tag", "untag", "pull"); len(m) != 0 {
		t.Errorf("a refused load named images: %v", m)
	}
}

// lineWith returns the first line of text that contains s.
func lineWith(text, s string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

func TestSaveBundleNeedsPinnedBinaries(t *testing.T) {
	lock, rel := noKubeletLock(t)
	out := filepath.Join(t.TempDir(), "bundle.tar")
	fake := fakeHost()
	_, _, err := runFake(t, fake, "save", "--lock", lock, "--bundle", out)
	want := "pins no sha256 for kubelet " + rel.Kubernetes + " on linux/amd64, so a bundle's kubelet cannot be checked"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("save --bundle with a lock that pins no kubelet: error %v, want one saying %q", err, want)
	}
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 0 {
		t.Errorf("a refused save --bundle left %v", entries)
	}
}

// A bundle whose kubelet is not the one the trusted lock pins is refused
// before Docker is asked to load anything, though its manifest vouches for
// it.
func TestLoadBundleRefusesAnUnpinnedKubelet(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{}
	for _, part := range bundle.Parts {
		files[part] = writeTemp(t, filepath.Base(part), "not what it should be: "+part)
	}
	lock, err := images.ParseLock(dk8s.DefaultLock)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bundle.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := bundle.Write(f, bundle.Manifest{Kubernetes: lock.Default, Platform: "linux/amd64"}, files); err != nil {
		t.Fatal(err)
	}
	f.Close()
	fake := fakeHost()
	_, stderr, err := runFake(t, fake, "load", "--bundle", path, "--dir", filepath.Join(dir, "cluster"))
	want := "the bundle's kubelet is not the kubelet " + lock.Default + " for linux/amd64 that the lock built into dk8s pins"
	if err == nil || !strings.Contains(err.Error(), want) || !strings.HasSuffix(err.Error(), "nothing of the bundle was loaded or installed") {
		t.Errorf("load --bundle of a foreign kubelet: error %v, want one saying %q and that nothing was loaded", err, want)
	}
	if !strings.HasPrefix(stderr, "Checking "+path+" against the lock built into dk8s\n") {
		t.Errorf("load --bundle said %q", stderr)
	}
	if m := fake.Mutations("load", "tag", "untag", "pull", "import"); len(m) != 0 {
		t.Errorf("a refused bundle reached Docker: %v", m)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("a refused bundle left %v beside it", entries)
	}
	if _, err := os.Stat(filepath.Join(dir, "cluster")); !os.IsNotExist(err) {
		t.Errorf("a refused bundle made the cluster directory: %v", err)
	}
}
