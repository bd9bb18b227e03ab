package integration

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
