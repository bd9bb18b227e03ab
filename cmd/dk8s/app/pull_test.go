package app

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dk8s/dk8s"
	"github.com/dk8s/dk8s/pkg/containers"
	"github.com/dk8s/dk8s/pkg/containers/containerstest"
	"github.com/dk8s/dk8s/pkg/images"
	"github.com/dk8s/dk8s/pkg/mirror"
)

// noKubeletLock writes the built-in lock without its host binaries, so
// that a pull fetches no kubelet over the network, and returns its path
// and default release.
func noKubeletLock(t *testing.T) (string, *images.Release) {
	t.Helper()
	lock, err := images.ParseLock(dk8s.DefaultLock)
	if err != nil {
		t.Fatal(err)
	}
	for i := range lock.Releases {
		lock.Releases[i].Binaries = nil
	}
	data, err := lock.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "images.lock")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	rel, err := lock.Release(lock.Default)
	if err != nil {
		t.Fatal(err)
	}
	return path, rel
}

// lockedImage is img as Docker holds it after a faithful pull for the
// fake's platform: its ID is the digest the lock records, if any.
func lockedImage(img images.Image) containers.Image {
	id := img.Platforms["linux/amd64"].Config
	if id == "" {
		id = img.Digest
	}
	if id == "" {
		id = "sha256:" + strings.Repeat("0", 64)
	}
	return containers.Image{ID: id, Platform: "linux/amd64"}
}

// verdict is what pull says of img pulled as lockedImage.
func verdict(img images.Image) string {
	if img.Known() {
		return "verified"
	}
	return "unverified"
}

// servedBy returns the first of mirrors that serves canonical, with its
// name there.
func servedBy(t *testing.T, canonical string, mirrors ...string) (string, string) {
	t.Helper()
	for _, word := range mirrors {
		m, _ := mirror.Parse(word)
		if ref, err := m.Ref(canonical); err == nil {
			return m.Name, ref
		}
	}
	t.Fatalf("none of %v serves %s", mirrors, canonical)
	return "", ""
}

// Pull from Aliyun, and flannel, on docker.io, which Aliyun is not known to
// serve, from DaoCloud.
func TestPullFromAMirror(t *testing.T) {
	lock, rel := noKubeletLock(t)
	fake := &containerstest.Engine{Images: map[string]containers.Image{}}
	for _, img := range rel.Images {
		_, ref := servedBy(t, img.Name, "aliyun", "daocloud")
		fake.Images[ref] = lockedImage(img)
	}
	dir := t.TempDir()
	stdout, stderr, err := runFake(t, fake, "pull", "--mirror", "aliyun,daocloud", "--lock", lock, "--dir", dir)
	if err != nil {
		t.Fatalf("pull: %v\n%s", err, stderr)
	}
	// The fake has no registry: its images are already under the mirror's
	// names, as if pulled by hand before, and those names, not made by
	// dk8s, stay.
	for _, img := range rel.Images {
		_, ref := servedBy(t, img.Name, "aliyun", "daocloud")
		if !slices.Contains(fake.Calls, "pull "+ref) || !slices.Contains(fake.Calls, "tag "+ref+" "+img.Name) {
			t.Errorf("%s was not pulled as %s and named: %v", img.Name, ref, fake.Calls)
		}
		if _, ok := fake.Images[img.Name]; !ok {
			t.Errorf("%s is not under its canonical name after the pull", img.Name)
		}
		if _, ok := fake.Images[ref]; !ok {
			t.Errorf("pull removed the name %s, which it did not make", ref)
		}
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != len(rel.Images)+1 || strings.Join(strings.Fields(lines[0]), " ") != "IMAGE MIRROR STATUS VERIFIED TIME" {
		t.Fatalf("pull's summary:\n%s", stdout)
	}
	for i, l := range lines[1:] {
		img := rel.Images[i]
		from, _ := servedBy(t, img.Name, "aliyun", "daocloud")
		if f := strings.Fields(l); len(f) != 5 || f[0] != img.Name || f[1] != from || f[2] != "pulled" || f[3] != verdict(img) {
			t.Errorf("summary row %q: want %s pulled from %s, %s", l, img.Name, from, verdict(img))
		}
	}
	flannel, ok := rel.Image("flannel")
	if !ok || !slices.ContainsFunc(lines, func(l string) bool {
		return strings.HasPrefix(strings.Join(strings.Fields(l), " "), flannel.Name+" daocloud ")
	}) {
		t.Errorf("flannel should come from daocloud:\n%s", stdout)
	}
	unverified := 0
	for _, img := range rel.Images {
		if !img.Known() {
			unverified++
		}
	}
	if unverified > 0 && !strings.Contains(stderr, " "+itoa(unverified)+" images are unverified: images.lock has no digest for them") {
		t.Errorf("pull should count the %d unverified images:\n%s", unverified, stderr)
	}
	for _, want := range []string{
		"Pulling " + itoa(len(rel.Images)) + " images of Kubernetes " + rel.Kubernetes + " from aliyun, then daocloud\n",
		"kubelet " + rel.Kubernetes + ": not fetched: images.lock names no kubelet for Kubernetes " + rel.Kubernetes + ", so nothing pins it and a download of it cannot be trusted; 'dk8s start' takes --kubelet-binary",
		"kubectl " + rel.Kubernetes + ": not fetched: images.lock names no kubectl",
		"Done in ",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("pull should say %q:\n%s", want, stderr)
		}
	}

	// A rerun finds every image present and pulls nothing.
	fake.Calls = nil
	stdout, _, err = runFake(t, fake, "pull", "--mirror", "aliyun,daocloud", "--lock", lock, "--dir", dir, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct{ Image, Status, Verified string }
	if err := json.Unmarshal([]byte(stdout), &rows); err != nil || len(rows) != len(rel.Images) {
		t.Fatalf("pull -o json: %v\n%s", err, stdout)
	}
	for i, r := range rows {
		if r.Image != rel.Images[i].Name || r.Status != "present" || r.Verified != verdict(rel.Images[i]) {
			t.Errorf("rerun: %+v, want present and %s", r, verdict(rel.Images[i]))
		}
	}
	if p := fake.Mutations("pull", "untag"); len(p) != 0 {
		t.Errorf("a rerun pulled or untagged: %v", p)
	}
}

func TestPullNamesWhatEachMirrorSaid(t *testing.T) {
	_, rel := noKubeletLock(t)
	stdout, stderr, err := runFake(t, fakeHost(), "pull", "--mirror", "aliyun,daocloud", "-o", "json")
	var exit ExitError
	if !errors.As(err, &exit) || exit.Code != 1 {
		t.Errorf("pull with no image to be had: error %v, want exit status 1", err)
	}
	var rows []struct{ Image, Status, Error string }
	if err := json.Unmarshal([]byte(stdout), &rows); err != nil || len(rows) != len(rel.Images) {
		t.Fatalf("pull -o json: %v\n%s", err, stdout)
	}
	for _, r := range rows {
		if r.Status != "failed" || r.Error == "" {
			t.Errorf("%+v: want failed, with the error", r)
		}
	}
	for _, want := range []string{
		itoa(len(rel.Images)) + " of the images could not be brought in:\n",
		"  " + rel.Images[0].Name + "\n    aliyun: ",
		"\n    daocloud: ",
		"Add a mirror that has them (--mirror a,b,...), or carry them in with 'dk8s save' and 'dk8s load'.",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("pull should say %q:\n%s", want, stderr)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// Aliyun's google_containers carries no docker.io image: with --mirror
// aliyun alone, flannel and the agent's base come through the Docker
// daemon's own registry-mirrors, by their canonical names, verified as the
// rest; without such mirrors, the error says the one line to add.
func TestPullDockerHubThroughTheDaemonsMirrors(t *testing.T) {
	lock, rel := noKubeletLock(t)
	fake := &containerstest.Engine{Images: map[string]containers.Image{}}
	var hub []images.Image
	for _, img := range rel.Images {
		if strings.HasPrefix(img.Name, "docker.io/") {
			hub = append(hub, img)
			continue
		}
		_, ref := servedBy(t, img.Name, "aliyun")
		fake.Images[ref] = lockedImage(img)
	}
	if len(hub) == 0 {
		t.Fatal("the built-in lock names no docker.io image")
	}
	// Without the daemon's mirrors: what to add.
	_, stderr, err := runFake(t, fake, "pull", "--mirror", "aliyun", "--lock", lock, "--dir", t.TempDir())
	var exit ExitError
	if !errors.As(err, &exit) || !strings.Contains(stderr, `docker.io's images need a mirror of Docker Hub: add one (--mirror aliyun,daocloud), or give the Docker daemon one, which dk8s pulls through: "registry-mirrors": ["https://MIRROR"] in /etc/docker/daemon.json`) {
		t.Fatalf("a pull with no mirror of docker.io: %v, want one saying what to add:\n%s", err, stderr)
	}
	// With them: the daemon pulls the canonical name through its mirrors
	// (the fake holds it under that name, as the daemon would after).
	fake.RegistryMirrors = []string{"https://hub-mirror.example/"}
	fake.Registry = map[string]containers.Image{}
	for _, img := range hub {
		fake.Registry[img.Name] = lockedImage(img)
	}
	stdout, stderr, err := runFake(t, fake, "pull", "--mirror", "aliyun", "--lock", lock, "--dir", t.TempDir())
	if err != nil {
		t.Fatalf("pull: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "fall back to the Docker daemon's registry-mirrors: https://hub-mirror.example/") {
		t.Errorf("pull should say docker.io's images come through the daemon's mirrors:\n%s", stderr)
	}
	for _, img := range hub {
		if !slices.Contains(fake.Calls, "pull "+img.Name) {
			t.Errorf("%s should be pulled by its canonical name through the daemon: %v", img.Name, fake.Calls)
		}
		if !slices.ContainsFunc(strings.Split(stdout, "\n"), func(l string) bool {
			f := strings.Fields(l)
			return len(f) == 5 && f[0] == img.Name && f[1] == mirror.DaemonName && f[2] == "pulled" && f[3] == verdict(img)
		}) {
			t.Errorf("%s should be pulled from %s, %s:\n%s", img.Name, mirror.DaemonName, verdict(img), stdout)
		}
	}
	if slices.ContainsFunc(fake.Calls, func(c string) bool { return strings.HasPrefix(c, "pull "+mirror.Upstream+"/") }) {
		t.Errorf("registry.k8s.io's images must never be pulled by their own names: %v", fake.Calls)
	}
}
