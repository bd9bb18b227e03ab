package integration

import (
	"archive/tar"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/dk8s/dk8s/pkg/images"
)

func TestPullFromFlatMirror(t *testing.T) {
	engine, rel := harness(t)
	clean(t, engine, rel)

	r := dk8s(t, nil, "pull", "--mirror", flatMirror)
	if r.code != 0 {
		t.Fatalf("pull failed:\n%s", r)
	}
	assertComplete(t, engine, rel)
	for _, img := range rel.Images {
		// The mirror's own names are gone: only canonical names remain.
		absent(t, engine, mirrorRef(t, flatMirror, img.Name))
		line := lineWith(r.stdout, img.Name)
		if !strings.Contains(line, "pulled") || !strings.Contains(line, "verified") || !strings.Contains(line, "127.0.0.1:5001") {
			t.Errorf("summary line for %s = %q, want it pulled from 127.0.0.1:5001 and verified", img.Name, line)
		}
	}
	// coredns sits at a flat path on Aliyun-like mirrors.
	if !strings.Contains(r.stderr, flatMirror+"/coredns:") {
		t.Errorf("coredns should come from the flat path %s/coredns:\n%s", flatMirror, r.stderr)
	}

	t.Run("images shows the set present and verified", func(t *testing.T) {
		r := dk8s(t, nil, "images", "--mirror", flatMirror)
		if r.code != 0 {
			t.Fatal(r)
		}
		for _, img := range rel.Images {
			line := lineWith(r.stdout, img.Name)
			if !strings.Contains(line, mirrorRef(t, flatMirror, img.Name)) || !strings.Contains(line, "yes") || !strings.Contains(line, "verified") {
				t.Errorf("images line for %s = %q", img.Name, line)
			}
		}
	})

	t.Run("a rerun does nothing", func(t *testing.T) {
		r := dk8s(t, nil, "pull", "--mirror", flatMirror)
		if r.code != 0 {
			t.Fatal(r)
		}
		if strings.Contains(r.stderr, "pulling") {
			t.Errorf("a rerun pulled again:\n%s", r.stderr)
		}
		for _, img := range rel.Images {
			if line := lineWith(r.stdout, img.Name); !strings.Contains(line, "present") {
				t.Errorf("rerun line for %s = %q, want present", img.Name, line)
			}
		}
	})
}

func TestPullFallsBackPastDeadMirror(t *testing.T) {
	engine, rel := harness(t)
	clean(t, engine, rel)

	r := dk8s(t, nil, "pull", "--mirror", deadMirror+","+pathMirror)
	if r.code != 0 {
		t.Fatalf("pull failed:\n%s", r)
	}
	assertComplete(t, engine, rel)
	for _, img := range rel.Images {
		if line := lineWith(r.stdout, img.Name); !strings.Contains(line, "127.0.0.1:5002") {
			t.Errorf("%s should come from the path-preserving mirror: %q", img.Name, line)
		}
	}
	if !strings.Contains(r.stderr, "connection refused") {
		t.Errorf("stderr should say why the dead mirror was passed over:\n%s", r.stderr)
	}
	// coredns keeps its upstream path on DaoCloud-like mirrors.
	if !strings.Contains(r.stderr, "127.0.0.1:5002/coredns/coredns:") {
		t.Errorf("coredns should come from 127.0.0.1:5002/coredns/coredns:\n%s", r.stderr)
	}
}

func TestPullFallsBackPastMissingTagAndRefusesWrongContent(t *testing.T) {
	engine, rel := harness(t)
	clean(t, engine, rel)

	r := dk8s(t, nil, "pull", "--mirror", badMirror+","+flatMirror)
	if r.code != 0 {
		t.Fatalf("pull failed:\n%s", r)
	}
	assertComplete(t, engine, rel)
	etcd := imageOf(t, rel, "etcd")
	if line := lineWith(r.stdout, etcd); !strings.Contains(line, "127.0.0.1:5001") {
		t.Errorf("etcd, missing on the bad mirror, should come from the next: %q", line)
	}
	if !strings.Contains(lineWith(r.stderr, etcd+": 127.0.0.1:5003"), "not on this mirror") {
		t.Errorf("stderr should say etcd is not on the bad mirror:\n%s", r.stderr)
	}
	api := imageOf(t, rel, "kube-apiserver")
	if line := lineWith(r.stdout, api); !strings.Contains(line, "127.0.0.1:5001") {
		t.Errorf("kube-apiserver, wrong on the bad mirror, should come from the next: %q", line)
	}
	if !strings.Contains(lineWith(r.stderr, api+": 127.0.0.1:5003"), "does not match images.lock") {
		t.Errorf("stderr should say the bad mirror's kube-apiserver does not match:\n%s", r.stderr)
	}
	absent(t, engine, mirrorRef(t, badMirror, api))
}

func TestPullRefusesWrongContentWithNoFallback(t *testing.T) {
	engine, rel := harness(t)
	clean(t, engine, rel)

	r := dk8s(t, nil, "pull", "--mirror", badMirror)
	if r.code == 0 {
		t.Fatalf("pull should fail when the only mirror serves a wrong kube-apiserver and no etcd:\n%s", r)
	}
	api, etcd := imageOf(t, rel, "kube-apiserver"), imageOf(t, rel, "etcd")
	// Nothing gets the canonical name, nor keeps the mirror's.
	for _, ref := range []string{api, "k8s.gcr.io/kube-apiserver:" + tagOf(api), mirrorRef(t, badMirror, api), etcd} {
		absent(t, engine, ref)
	}
	for _, want := range []string{"2 of the images could not be brought in", api, etcd, "does not match images.lock", "not on this mirror"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr should say %q:\n%s", want, r.stderr)
		}
	}
	// The rest came in, verified.
	if line := lineWith(r.stdout, imageOf(t, rel, "kube-scheduler")); !strings.Contains(line, "verified") {
		t.Errorf("kube-scheduler should still be pulled: %q", line)
	}
}

func TestInterruptedPullFinishesOnRerun(t *testing.T) {
	engine, rel := harness(t)
	clean(t, engine, rel)

	cmd, stderr := startDK8s(t, "pull", "--parallel", "1", "--mirror", flatMirror)
	if !waitFor(2*time.Minute, func() bool { return strings.Contains(stderr.String(), ": done from") }) {
		cmd.Process.Kill()
		t.Fatalf("no image finished:\n%s", stderr)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if cmd.ProcessState.ExitCode() != 130 {
		t.Fatalf("an interrupted pull should exit 130, got %v:\n%s", err, stderr)
	}
	if !strings.Contains(stderr.String(), "run it again to finish") {
		t.Errorf("stderr should say how to finish:\n%s", stderr)
	}
	done := strings.Count(stderr.String(), ": done from")
	if done >= len(rel.Images) {
		t.Fatalf("the pull finished before the interrupt; nothing was tested:\n%s", stderr)
	}

	r := dk8s(t, nil, "pull", "--mirror", flatMirror)
	if r.code != 0 {
		t.Fatalf("rerun failed:\n%s", r)
	}
	assertComplete(t, engine, rel)
	if got := strings.Count(r.stdout, " present "); got < done {
		t.Errorf("the rerun should skip the %d images the first run finished; it skipped %d:\n%s", done, got, r)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	engine, rel := harness(t)
	clean(t, engine, rel)
	if r := dk8s(t, nil, "pull", "--mirror", flatMirror); r.code != 0 {
		t.Fatal(r)
	}
	archive := filepath.Join(t.TempDir(), "set.tar")
	if r := dk8s(t, nil, "save", "-o", archive); r.code != 0 {
		t.Fatalf("save failed:\n%s", r)
	}
	clean(t, engine, rel)

	// The machine that loads has no registry; it checks what it loads
	// against its own lock (here the harness's), not the archive's.
	r := dk8s(t, nil, "load", "-i", archive)
	if r.code != 0 {
		t.Fatalf("load failed:\n%s", r)
	}
	assertComplete(t, engine, rel)
	for _, img := range rel.Images {
		if line := lineWith(r.stdout, img.Name); !strings.Contains(line, "loaded") || !strings.Contains(line, "verified") {
			t.Errorf("load line for %s = %q", img.Name, line)
		}
	}
	noQuarantineNames(t)

	t.Run("--require-verified refuses an image the lock has no digest for", func(t *testing.T) {
		clean(t, engine, rel)
		lock, scheduler := lockWithout(t, "kube-scheduler")
		r := dk8s(t, nil, "load", "-i", archive, "--lock", lock, "--require-verified")
		if r.code == 0 {
			t.Fatalf("load should fail:\n%s", r)
		}
		absent(t, engine, scheduler.Name)
		for _, a := range scheduler.Aliases {
			absent(t, engine, a)
		}
		if !strings.Contains(lineWith(r.stderr, scheduler.Name), "unverified, so --require-verified refused it") {
			t.Errorf("stderr should say why %s was refused:\n%s", scheduler.Name, r.stderr)
		}
		present(t, engine, imageOf(t, rel, "kube-apiserver"))
		noQuarantineNames(t)
	})

	t.Run("a file that is not an image set is refused", func(t *testing.T) {
		bogus := filepath.Join(t.TempDir(), "bogus.tar")
		os.WriteFile(bogus, []byte("not a tar"), 0o644)
		r := dk8s(t, nil, "load", "-i", bogus)
		if r.code == 0 || !strings.Contains(r.stderr, "not a dk8s image set") {
			t.Errorf("want a clear refusal:\n%s", r)
		}
	})
}

// An archive altered in transit, its carried lock rewritten to vouch for
// pause's content under kube-apiserver's name, is refused: the lock dk8s
// trusts decides, and nothing of the archive's reaches a canonical name.
func TestLoadRefusesTamperedArchive(t *testing.T) {
	engine, rel := harness(t)
	clean(t, engine, rel)
	if r := dk8s(t, nil, "pull", "--mirror", flatMirror); r.code != 0 {
		t.Fatal(r)
	}
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.tar"), filepath.Join(dir, "tampered.tar")
	if r := dk8s(t, nil, "save", "-o", good); r.code != 0 {
		t.Fatalf("save failed:\n%s", r)
	}
	api, _ := rel.Image("kube-apiserver")
	tamper(t, good, bad, "kube-apiserver", "pause")
	apiNames := append([]string{api.Name}, api.Aliases...)

	refused := func(t *testing.T, r result) {
		t.Helper()
		if r.code == 0 {
			t.Fatalf("loading the tampered archive should fail:\n%s", r)
		}
		if !strings.Contains(lineWith(r.stderr, api.Name), "does not match images.lock") {
			t.Errorf("stderr should say %s does not match:\n%s", api.Name, r.stderr)
		}
		if line := lineWith(r.stdout, api.Name); !strings.Contains(line, "FAILED") || !strings.Contains(line, "MISMATCH") {
			t.Errorf("load line for %s = %q, want FAILED and MISMATCH", api.Name, line)
		}
		noQuarantineNames(t)
	}

	t.Run("the good image keeps its names", func(t *testing.T) {
		before := present(t, engine, api.Name)
		refused(t, dk8s(t, nil, "load", "-i", bad))
		for _, name := range apiNames {
			if got := present(t, engine, name); got.ID != before.ID {
				t.Errorf("%s was replaced: %s, had %s", name, got.ID, before.ID)
			}
		}
	})

	t.Run("an absent image stays absent", func(t *testing.T) {
		clean(t, engine, rel)
		refused(t, dk8s(t, nil, "load", "-i", bad))
		for _, name := range apiNames {
			absent(t, engine, name)
		}
		// The rest of the archive is sound, and loads.
		pause := present(t, engine, imageOf(t, rel, "pause"))
		if v := images.Verify(*mustImage(t, rel, "pause"), pause, "linux/amd64"); v.Verdict != images.Verified {
			t.Errorf("pause: %s (%s)", v.Verdict, v.Detail)
		}
	})
}

// TestPullRequireVerified: an image the lock has no digest for is refused
// before it gets any name, and the pull fails.
func TestPullRequireVerified(t *testing.T) {
	engine, rel := harness(t)
	clean(t, engine, rel)
	lock, scheduler := lockWithout(t, "kube-scheduler")

	r := dk8s(t, nil, "pull", "--lock", lock, "--mirror", flatMirror, "--require-verified")
	if r.code == 0 {
		t.Fatalf("pull should fail:\n%s", r)
	}
	for _, ref := range append([]string{scheduler.Name, mirrorRef(t, flatMirror, scheduler.Name)}, scheduler.Aliases...) {
		absent(t, engine, ref)
	}
	for _, want := range []string{"1 of the images could not be brought in", scheduler.Name, "unverified, so --require-verified refused it", "dk8s images lock --from upstream"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr should say %q:\n%s", want, r.stderr)
		}
	}
	if line := lineWith(r.stdout, scheduler.Name); !strings.Contains(line, "failed") || !strings.Contains(line, "unverified") {
		t.Errorf("summary line for %s = %q, want failed and unverified", scheduler.Name, line)
	}
	if line := lineWith(r.stdout, imageOf(t, rel, "kube-apiserver")); !strings.Contains(line, "verified") || strings.Contains(line, "unverified") {
		t.Errorf("kube-apiserver should still be pulled, verified: %q", line)
	}
}

// lockWithout writes a copy of the harness's lock with component's digests
// blanked, and returns its path and that image.
func lockWithout(t *testing.T, component string) (string, images.Image) {
	t.Helper()
	lock, err := images.ReadLock(testLock)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := lock.Release("")
	if err != nil {
		t.Fatal(err)
	}
	img, ok := rel.Image(component)
	if !ok {
		t.Fatalf("the lock has no %s", component)
	}
	img.Digest, img.Platforms = "", nil
	data, err := lock.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "images.lock")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, *img
}

// tamper copies the 'dk8s save' archive src to dst as an attacker would
// alter it: the carried lock gives victim the digests of donor, and
// manifest.json gives donor's content victim's names.
func tamper(t *testing.T, src, dst, victim, donor string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	tr, tw := tar.NewReader(in), tar.NewWriter(out)
	var victimNames []string
	var donorName string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		switch hdr.Name {
		case "dk8s-images.lock": // the first entry
			lock, err := images.ParseLock(data)
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := lock.Release("")
			v, d := mustImage(t, rel, victim), mustImage(t, rel, donor)
			v.Digest, v.Platforms = d.Digest, d.Platforms
			victimNames, donorName = append([]string{v.Name}, v.Aliases...), d.Name
			if data, err = lock.Marshal(); err != nil {
				t.Fatal(err)
			}
		case "manifest.json":
			var entries []map[string]any
			if err := json.Unmarshal(data, &entries); err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				var tags []any
				isDonor := false
				for _, tag := range e["RepoTags"].([]any) {
					if slices.Contains(victimNames, tag.(string)) {
						continue
					}
					isDonor = isDonor || tag == donorName
					tags = append(tags, tag)
				}
				if isDonor {
					for _, n := range victimNames {
						tags = append(tags, n)
					}
				}
				e["RepoTags"] = tags
			}
			if data, err = json.Marshal(entries); err != nil {
				t.Fatal(err)
			}
		}
		hdr.Size = int64(len(data))
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// noQuarantineNames fails the test for any name 'dk8s load' gives images
// while it checks them that is still in Docker's store.
func noQuarantineNames(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	c, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		t.Fatal(err)
	}
	list, err := c.ImageList(ctx, client.ImageListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range list.Items {
		for _, tag := range img.RepoTags {
			if strings.HasPrefix(tag, "dk8s-load.local/") {
				t.Errorf("quarantine name %s is left in Docker's store", tag)
			}
		}
	}
}

func mustImage(t *testing.T, rel *images.Release, component string) *images.Image {
	t.Helper()
	img, ok := rel.Image(component)
	if !ok {
		t.Fatalf("the lock has no %s", component)
	}
	return img
}

func TestBadInput(t *testing.T) {
	harness(t)
	malformed := filepath.Join(t.TempDir(), "images.lock")
	os.WriteFile(malformed, []byte("apiVersion: dk8s.io/v1alpha1\nkind: ImageLock\ndefault: v1.37.2\nreleases:\n  - kubernetes: v1.37.2\n    imagez: []\n"), 0o644)
	cases := []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"unknown mirror", nil, []string{"pull", "--mirror", "alyun"}, []string{`unknown mirror "alyun"`, "aliyun, aliyun-hangzhou, daocloud, upstream"}},
		{"malformed lock", nil, []string{"pull", "--lock", malformed, "--mirror", flatMirror}, []string{malformed, "malformed image lock", "line 6", "imagez"}},
		{"missing lock", nil, []string{"images", "--lock", "/nonexistent/images.lock"}, []string{"/nonexistent/images.lock", "no such file"}},
		{"unknown version", nil, []string{"pull", "--kubernetes-version", "v1.99.0", "--mirror", flatMirror}, []string{"v1.99.0 is not in the image lock", "v1.37.2"}},
		{"unreachable daemon", []string{"DOCKER_HOST=unix:///nonexistent/docker.sock"}, []string{"pull", "--mirror", flatMirror}, []string{"cannot reach the Docker daemon at unix:///nonexistent/docker.sock", "is dockerd running"}},
		{"bad platform", nil, []string{"pull", "--platform", "amd64", "--mirror", flatMirror}, []string{`platform "amd64" must be OS/ARCH`}},
		{"bad output", nil, []string{"images", "-o", "yaml"}, []string{`unknown output format "yaml"`}},
		{"save without a file", nil, []string{"save"}, []string{"--output is required"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := dk8s(t, c.env, c.args...)
			if r.code == 0 {
				t.Fatalf("want a non-zero exit:\n%s", r)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr should contain %q:\n%s", w, r)
				}
			}
			if r.stdout != "" {
				t.Errorf("nothing should go to stdout on error, got %q", r.stdout)
			}
		})
	}
}

func lineWith(text, s string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// imageOf returns the canonical name of the release's component.
func imageOf(t *testing.T, rel *images.Release, component string) string {
	t.Helper()
	img, ok := rel.Image(component)
	if !ok {
		t.Fatalf("the lock has no %s", component)
	}
	return img.Name
}

func tagOf(ref string) string { return ref[strings.LastIndex(ref, ":")+1:] }
