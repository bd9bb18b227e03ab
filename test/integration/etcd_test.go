package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestEtcd is etcd's care on a single control plane: status, a snapshot
// saved by hand with its sum, scheduled snapshots pruned to their
// retention, a tampered snapshot refused, and a restore after etcd's data
// is lost.
func TestEtcd(t *testing.T) {
	engine, _ := harness(t)
	c := newCluster(t)
	c.start("--etcd-snapshot-interval", "3s", "--etcd-snapshot-retention", "2")
	c.writeMarker("in-the-snapshot")
	node := nodeName(t, c)
	snapshots := filepath.Join(c.dir, "snapshots")

	t.Run("status shows one member, the leader, and no alarm", func(t *testing.T) {
		r := c.run("etcd", "status")
		if r.code != 0 {
			t.Fatalf("etcd status on a healthy etcd:\n%s", r)
		}
		if line := lineWith(r.stdout, "https://127.0.0.1:2380"); !strings.HasPrefix(line, node+" ") || !strings.Contains(line, " leader ") {
			t.Errorf("the member line should name %s as the leader: %q\n%s", node, line, r)
		}
		if !strings.Contains(r.stdout, "ALARMS: none") || !strings.Contains(lineWith(r.stdout, "https://127.0.0.1:2379 "), " ok") {
			t.Errorf("status:\n%s", r)
		}
		r = c.run("etcd", "status", "-o", "json")
		var st struct {
			Members []struct{ Name string }
			Leader  string
			Alarms  []any
		}
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st.Members) != 1 || st.Leader != node || len(st.Alarms) != 0 {
			t.Errorf("status -o json: %v %+v\n%s", err, st, r)
		}
	})

	var saved string
	t.Run("snapshot save writes the file, root's alone, and a matching .sha256", func(t *testing.T) {
		r := c.run("etcd", "snapshot", "save")
		if r.code != 0 {
			t.Fatalf("snapshot save:\n%s", r)
		}
		fields := strings.Fields(r.stdout)
		if len(fields) < 3 || filepath.Dir(fields[0]) != snapshots || !strings.HasPrefix(filepath.Base(fields[0]), "etcd-2") || !strings.HasPrefix(fields[len(fields)-1], "sha256:") {
			t.Fatalf("save should print the path in %s, the size and the sha256:\n%s", snapshots, r)
		}
		saved = fields[0]
		for _, p := range []string{saved, saved + ".sha256"} {
			if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("%s: %v; want it 0600, a snapshot holds every Secret", p, err)
			}
		}
		if st, err := os.Stat(snapshots); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, want 0700", snapshots, err)
		}
		check := exec.Command("sha256sum", "-c", filepath.Base(saved)+".sha256")
		check.Dir = snapshots
		if out, err := check.CombinedOutput(); err != nil || !strings.Contains(string(out), ": OK") {
			t.Errorf("sha256sum -c: %v\n%s", err, out)
		}
		if !strings.Contains(fields[len(fields)-1], strings.Fields(readFile(t, saved+".sha256"))[0]) {
			t.Errorf("save printed %s, the sum file says %s", fields[len(fields)-1], readFile(t, saved+".sha256"))
		}
		if r := c.run("etcd", "snapshot", "save", saved); r.code == 0 || !strings.Contains(r.stderr, "never overwrites") {
			t.Errorf("saving over a snapshot should be refused:\n%s", r)
		}
	})

	t.Run("scheduled snapshots: the newest 2 kept, the one saved by hand never deleted", func(t *testing.T) {
		since := time.Now()
		var names []string
		ok := waitFor(45*time.Second, func() bool {
			names = scheduled(t, snapshots)
			if len(names) != 2 {
				return false
			}
			// Named by their UTC time: the older kept one was taken after
			// more than two intervals had gone by, so others were pruned.
			taken, err := time.Parse("20060102T150405Z", strings.TrimSuffix(strings.TrimPrefix(names[0], "etcd-scheduled-"), ".db"))
			return err == nil && taken.After(since.Add(9*time.Second))
		})
		if !ok {
			t.Fatalf("want exactly 2 scheduled snapshots, the older taken 9s after %s; have %v", since.UTC().Format(time.RFC3339), names)
		}
		if _, err := os.Stat(saved); err != nil {
			t.Errorf("the snapshot saved by hand is gone: %v", err)
		}
		list := c.run("etcd", "snapshot", "list")
		if list.code != 0 || strings.Count(list.stdout, " scheduled") < 2 || !strings.Contains(lineWith(list.stdout, filepath.Base(saved)), " saved") {
			t.Errorf("snapshot list:\n%s", list)
		}
		ps := c.run("ps")
		if line := lineWith(ps.stdout, "etcd-snapshotter "); ps.code != 0 || !strings.Contains(line, "healthy") {
			t.Errorf("ps should show the etcd-snapshotter healthy: %q\n%s", line, ps)
		}
	})

	t.Run("a tampered snapshot is refused with nothing changed", func(t *testing.T) {
		dir := t.TempDir()
		bad := filepath.Join(dir, filepath.Base(saved))
		data, err := os.ReadFile(saved)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/2] ^= 0xff
		os.WriteFile(bad, data, 0o600)
		os.WriteFile(bad+".sha256", []byte(readFile(t, saved+".sha256")), 0o600)
		before := ids(t, engine)
		r := c.run("etcd", "snapshot", "restore", bad)
		if r.code == 0 || !strings.Contains(r.stderr, "does not match") || !strings.Contains(r.stderr, "nothing was changed") {
			t.Errorf("restore of a tampered snapshot:\n%s", r)
		}
		if after := ids(t, engine); !equalMaps(before, after) {
			t.Errorf("containers changed: %v -> %v", before, after)
		}
		if aside, _ := filepath.Glob(filepath.Join(c.dir, "etcd.*")); len(aside) != 0 {
			t.Errorf("a refused restore left %v", aside)
		}
		if r := c.run("ps"); r.code != 0 {
			t.Errorf("the cluster should run on untouched:\n%s", r)
		}
	})

	t.Run("etcd's data lost: restore brings the cluster back from the snapshot", func(t *testing.T) {
		writeConfigMap(t, c, "dk8s-after-snapshot")
		// The disaster: etcd stopped, its data gone.
		if err := engine.StopContainer(context.Background(), "dk8s-etcd", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(c.dir, "etcd", "member")); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		r := c.run("etcd", "snapshot", "restore", saved)
		if r.code != 0 {
			t.Fatalf("restore:\n%s", r)
		}
		t.Logf("restore, in %s:\n%s", time.Since(start).Round(100*time.Millisecond), r.stderr)
		for _, want := range []string{"checks out", "etcdutl made a new data directory", "✓ etcd is healthy", "✓ kube-apiserver is healthy", "etcd.before-restore-"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("restore should say %q:\n%s", want, r)
			}
		}
		aside, _ := filepath.Glob(filepath.Join(c.dir, "etcd.before-restore-*"))
		if len(aside) != 1 {
			t.Errorf("the old data directory should be kept aside, once: %v", aside)
		}
		c.waitHealthy(2 * time.Minute)
		c.assertMarker("in-the-snapshot")
		if configMapFound(t, c, "dk8s-after-snapshot") {
			t.Error("an object written after the snapshot is back: the restore did not restore the snapshot")
		}
		st := c.run("etcd", "status")
		if st.code != 0 || !strings.Contains(lineWith(st.stdout, "https://127.0.0.1:2380"), " leader ") {
			t.Errorf("status after the restore:\n%s", st)
		}
	})
}

// nodeName is the node name the cluster's marker keeps.
func nodeName(t *testing.T, c *cluster) string {
	t.Helper()
	for _, line := range strings.Split(readFile(t, filepath.Join(c.dir, "dk8s-cluster.yaml")), "\n") {
		if v, ok := strings.CutPrefix(line, "nodeName: "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("the marker names no node")
	return ""
}

// scheduled lists the scheduled snapshots in dir, oldest first.
func scheduled(t *testing.T, dir string) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, "etcd-scheduled-*.db"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range matches {
		names = append(names, filepath.Base(m))
	}
	return names
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// writeConfigMap writes an object the test later looks for.
func writeConfigMap(t *testing.T, c *cluster, name string) {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := c.client().CoreV1().ConfigMaps(markerNS).Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("writing %s: %v", name, err)
	}
}

// configMapFound tells whether the apiserver has the object name, retrying
// while it settles.
func configMapFound(t *testing.T, c *cluster, name string) bool {
	t.Helper()
	var err error
	if !waitFor(30*time.Second, func() bool {
		_, err = c.client().CoreV1().ConfigMaps(markerNS).Get(context.Background(), name, metav1.GetOptions{})
		return err == nil || apierrors.IsNotFound(err)
	}) {
		t.Fatalf("the apiserver did not answer a read of %s within 30s: %v", name, err)
	}
	return err == nil
}
