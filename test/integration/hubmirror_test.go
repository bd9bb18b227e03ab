package integration

import (
	"strings"
	"testing"
)

// The design's first example, `dk8s pull --mirror aliyun`, on a host as
// most in China are: Aliyun's google_containers has no docker.io image
// (flannel), and the Docker daemon reaches Docker Hub
// through the registry-mirrors of its daemon.json. Here the Aliyun-like
// mirror is the harness's flat one that holds registry.k8s.io's images
// alone, and the path-preserving registry plays the daemon's mirror of
// Docker Hub, on a machine that boots systemd.
func TestAliyunAloneWithTheDaemonsRegistryMirrors(t *testing.T) {
	m := startSystemdMachine(t, "dk8s-it-hubmirror")

	// With no mirror of Docker Hub anywhere, the pull fails on flannel
	// alone, and says the one line to add.
	r := m.dk8s(t, "pull", "--mirror", machineAliyunMirror)
	first := pullRows(r.stdout)
	if r.code == 0 || !strings.Contains(r.stderr, `"registry-mirrors": ["https://MIRROR"] in /etc/docker/daemon.json`) ||
		!strings.Contains(r.stderr, "--mirror aliyun,daocloud") || !strings.Contains(r.stderr, "1 of the images could not be brought in") {
		t.Fatalf("a pull with no mirror of docker.io should fail on its one image and say what to add:\n%s", r)
	}

	// A user adds the key and restarts Docker, as the error says.
	if r := m.exec(t, "sh", "-c", `cat >/etc/docker/daemon.json <<'JSON'
{"insecure-registries": ["172.29.0.1:5001", "172.29.0.1:5002"], "registry-mirrors": ["http://172.29.0.1:5002"]}
JSON
systemctl restart docker`); r.code != 0 {
		t.Fatalf("configuring the daemon's registry-mirrors:\n%s", r)
	}
	m.waitDocker(t)
	if r := m.exec(t, "docker", "info", "--format", "{{.RegistryConfig.Mirrors}}"); !strings.Contains(r.stdout, "172.29.0.1:5002") {
		t.Fatalf("the daemon should show its registry-mirrors:\n%s", r)
	}

	r = m.must(t, "pull", "--mirror", machineAliyunMirror)
	if !strings.Contains(r.stderr, "docker.io's images (flannel) fall back to the Docker daemon's registry-mirrors: http://172.29.0.1:5002/") {
		t.Errorf("the pull should say docker.io's images come through the daemon's mirrors:\n%s", r)
	}
	second := pullRows(r.stdout)
	// Every image verified (the harness's lock pins them all):
	// registry.k8s.io's from the Aliyun-like mirror by the first pull,
	// which kept them, docker.io's from the daemon's mirrors by the second.
	for _, n := range strings.Fields(m.must(t, "images", "-o", "name").stdout) {
		rows, want := first, "aliyun/google_containers"
		if strings.HasPrefix(n, "docker.io/") {
			rows, want = second, "registry-mirrors"
		} else if f := second[n]; len(f) != 5 || f[2] != "present" || f[3] != "verified" {
			t.Errorf("%s: %v on the second pull, want present and verified", n, f)
		}
		if f := rows[n]; len(f) != 5 || !strings.Contains(f[1], want) || f[2] != "pulled" || f[3] != "verified" {
			t.Errorf("%s: %v, want pulled from %s and verified", n, f, want)
		}
	}
	// dk8s mirrors names them too. (Its probe of this mirror fails: it
	// speaks plain HTTP to loopback registries only, not to those the
	// daemon lists as insecure.)
	if r := m.dk8s(t, "mirrors", "--mirror", machineAliyunMirror); !strings.Contains(r.stderr, "docker.io's images also come through the Docker daemon's registry-mirrors (http://172.29.0.1:5002/), after these") {
		t.Errorf("dk8s mirrors should name the daemon's registry-mirrors:\n%s", r)
	}

	// And the node starts from what came in.
	r = m.must(t, "start", "--kubelet-binary", machineKubelet, "--mirror", machineAliyunMirror)
	if !strings.Contains(r.stderr, "is Ready") {
		t.Errorf("start should bring the node to Ready:\n%s", r)
	}
}

// pullRows are the rows of dk8s pull's table, by image: IMAGE MIRROR
// STATUS VERIFIED TIME.
func pullRows(table string) map[string][]string {
	rows := map[string][]string{}
	for _, l := range strings.Split(table, "\n") {
		if f := strings.Fields(l); len(f) == 5 {
			rows[f[0]] = f
		}
	}
	return rows
}
