package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dk8s/dk8s/pkg/containers"
)

// A machine hosted in Docker 20.10 or LXC, as many cheap VPSes are: root
// lacks SYS_RESOURCE and every capability newer than that Docker knows
// (PERFMON, BPF, CHECKPOINT_RESTORE). Here it is a container started with
// every capability Docker 20.10 knows but SYS_RESOURCE, with the daemon's
// socket bound in, in which a static program creates and starts a
// privileged container through pkg/containers as dk8s does for kubelet. The
// daemon refuses to drop capabilities it does not know; dk8s must still get
// its container, without SYS_RESOURCE, which root there cannot grant.
func TestPrivilegedWithoutNewerCaps(t *testing.T) {
	engine, rel := harness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pause, ok := rel.Image("pause")
	if !ok {
		t.Fatal("the harness's lock names no pause image")
	}
	// The pause image is FROM scratch: the machine runs nothing but the
	// program bound into it.
	image := mirrorRef(t, flatMirror, pause.Name)
	if _, err := engine.InspectImage(ctx, image); containers.IsNotFound(err) {
		if err := engine.PullImage(ctx, image, containers.PullOptions{}); err != nil {
			t.Fatalf("pulling %s: %v", image, err)
		}
		t.Cleanup(func() { engine.UntagImage(context.Background(), image) })
	}
	bin := filepath.Join(t.TempDir(), "captest")
	build := exec.Command("go", "build", "-o", bin, "github.com/dk8s/dk8s/test/captest")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building test/captest: %v\n%s", err, out)
	}

	const machine, inner = "dk8s-captest-machine", "dk8s-captest-inner"
	remove := func() {
		for _, n := range []string{inner, machine} {
			engine.RemoveContainer(context.Background(), n)
		}
	}
	remove() // an interrupted run's: these names are this test's alone
	t.Cleanup(remove)

	// Root, as a machine's is (the pause image declares nobody, as
	// upstream's does). A daemon that knows the newer capabilities grants
	// them with ALL: it is told to drop them too, so that the machine's
	// root lacks them on every daemon.
	var out []byte
	for _, drop := range [][]string{{"SYS_RESOURCE"}, {"SYS_RESOURCE", "PERFMON", "BPF", "CHECKPOINT_RESTORE"}} {
		remove()
		args := []string{"run", "--name", machine, "--user", "0:0", "--cap-add", "ALL"}
		for _, c := range drop {
			args = append(args, "--cap-drop", c)
		}
		args = append(args, "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
			"-v", dockerSocket()+":/var/run/docker.sock", "-v", bin+":/captest:ro",
			"--entrypoint", "/captest", image, inner, image)
		var err error
		out, err = exec.CommandContext(ctx, "docker", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("dk8s, in a machine whose root lacks capabilities, could not start a privileged container: %v\n%s", err, out)
		}
		if missing := lineWith(string(out), "missing:"); strings.Contains(missing, "BPF") && strings.Contains(missing, "SYS_RESOURCE") {
			break
		}
	}
	if missing := lineWith(string(out), "missing:"); !strings.Contains(missing, "BPF") || !strings.Contains(missing, "SYS_RESOURCE") {
		t.Fatalf("the machine's root should lack SYS_RESOURCE and BPF, or the case is not exercised: %q\n%s", missing, out)
	}

	c, err := engine.InspectContainer(ctx, inner)
	if err != nil {
		t.Fatalf("the privileged container was not created: %v\n%s", err, out)
	}
	if !c.Running {
		t.Fatalf("the privileged container is %s (exit %d), want running", c.State, c.ExitCode)
	}
	drop, err := exec.CommandContext(ctx, "docker", "inspect", "-f", "{{json .HostConfig.CapDrop}}", inner).Output()
	if err != nil {
		t.Fatalf("docker inspect %s: %v", inner, err)
	}
	if d := strings.ToUpper(string(drop)); !strings.Contains(d, "SYS_RESOURCE") || strings.Contains(d, "BPF") || strings.Contains(d, "PERFMON") {
		t.Errorf("the privileged container drops %s; want SYS_RESOURCE, which root lacks, and no capability this daemon does not know", drop)
	}
}

// dockerSocket is the host path of the daemon's socket.
func dockerSocket() string {
	if path, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok {
		return path
	}
	return "/var/run/docker.sock"
}
