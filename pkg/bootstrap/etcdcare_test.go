package bootstrap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	etcdc "github.com/dk8s/dk8s/pkg/etcd"
)

// snapshotBytes is what etcd streams for a snapshot: a database of whole
// pages and its sha256.
func snapshotBytes() []byte {
	db := bytes.Repeat([]byte{7}, 1024)
	sum := sha256.Sum256(db)
	return append(db, sum[:]...)
}

// snapshotAPI is an etcd that serves snapshots, or fails to.
type snapshotAPI struct {
	etcdc.API
	fail error
}

func (s *snapshotAPI) SnapshotWithVersion(context.Context) (*clientv3.SnapshotResponse, error) {
	if s.fail != nil {
		return nil, s.fail
	}
	return &clientv3.SnapshotResponse{Snapshot: io.NopCloser(bytes.NewReader(snapshotBytes()))}, nil
}

func TestSnapshotterTakesPrunesAndSaysSoInItsHealth(t *testing.T) {
	dir := t.TempDir()
	mine := filepath.Join(dir, etcdc.SnapshotName(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), false))
	os.WriteFile(mine, []byte("the user's"), 0o600)
	api := &snapshotAPI{}
	var logged []string
	s := &Snapshotter{Client: etcdc.NewFromAPI(api, nil), Dir: dir, Interval: time.Hour, Keep: 2, Log: func(m string) { logged = append(logged, m) }}
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	s.state.started = start
	if code, msg := s.health(start); code != http.StatusOK || !strings.Contains(msg, "no snapshot yet") || !strings.Contains(msg, "next due by 2025-01-01T01:00:00Z") {
		t.Errorf("before the first snapshot: %d %q", code, msg)
	}
	for i := 1; i <= 3; i++ {
		s.takeOne(context.Background(), start.Add(time.Duration(i)*time.Hour))
	}
	list, _ := etcdc.List(dir)
	var names []string
	for _, l := range list {
		names = append(names, filepath.Base(l.Path))
	}
	want := []string{"etcd-scheduled-20250101T030000Z.db", "etcd-scheduled-20250101T020000Z.db", filepath.Base(mine)}
	if !slices.Equal(names, want) {
		t.Errorf("snapshots %v, want %v: the newest 2 scheduled and the user's", names, want)
	}
	code, msg := s.health(start)
	if code != http.StatusOK || !strings.Contains(msg, "last snapshot etcd-scheduled-20250101T030000Z.db") {
		t.Errorf("after three: %d %q", code, msg)
	}
	api.fail = errors.New("etcdserver: request timed out")
	s.takeOne(context.Background(), start.Add(4*time.Hour))
	code, msg = s.health(start)
	if code != http.StatusServiceUnavailable || !strings.Contains(msg, "request timed out") || !strings.Contains(msg, "last snapshot etcd-scheduled-20250101T030000Z.db") {
		t.Errorf("after a failure: %d %q", code, msg)
	}
	if !strings.Contains(strings.Join(logged, "\n"), "deleted the old scheduled snapshot etcd-scheduled-20250101T010000Z.db") {
		t.Errorf("log: %v", logged)
	}
	off := &Snapshotter{Interval: 0}
	if code, msg := off.health(start); code != http.StatusOK || !strings.Contains(msg, "off") {
		t.Errorf("off: %d %q", code, msg)
	}
}

func TestSnapshotScheduleIsKeptInTheMarker(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{ClusterName: "dk8s", Dir: dir, NodeName: "n"}
	if i, k := cfg.snapshotSchedule(); i != 12*time.Hour || k != 5 {
		t.Errorf("defaults %s %d, want k3s's 12h and 5", i, k)
	}
	three := 3 * time.Second
	cfg.SnapshotInterval, cfg.SnapshotRetention = &three, 2
	if err := writeSettings(dir, settingsOf(cfg)); err != nil {
		t.Fatal(err)
	}
	again := Config{ClusterName: "dk8s", Dir: dir}
	if err := again.resolveKept(); err != nil {
		t.Fatal(err)
	}
	if i, k := again.snapshotSchedule(); i != three || k != 2 {
		t.Errorf("a rerun without the flags has %s %d, want the kept 3s and 2", i, k)
	}
	flags := etcdSnapshotter().Flags(again)
	if flags["interval"] != "3s" || flags["retention"] != "2" {
		t.Errorf("the snapshotter's flags %v", flags)
	}
	// Turned off, and kept off.
	zero := time.Duration(0)
	again.SnapshotInterval = &zero
	writeSettings(dir, settingsOf(again))
	third := Config{ClusterName: "dk8s", Dir: dir}
	third.resolveKept()
	if i, _ := third.snapshotSchedule(); i != 0 {
		t.Errorf("interval %s after turning it off", i)
	}
}

func TestRestoreSpecRunsEtcdutlForThisMember(t *testing.T) {
	cfg := Config{ClusterName: "dk8s", Dir: "/var/lib/dk8s", NodeName: "node-1"}
	s := restoreSpec(cfg, "registry.k8s.io/etcd:3.7.0-0", "/backup/x.db", "/var/lib/dk8s/etcd.restore-T")
	args := strings.Join(s.Args, " ")
	for _, want := range []string{"snapshot restore /snapshot.db", "--name=node-1", "--initial-cluster=node-1=https://127.0.0.1:2380",
		"--initial-advertise-peer-urls=https://127.0.0.1:2380", "--data-dir=/restore/etcd", "--bump-revision=1000000000", "--mark-compacted=true"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	if s.RestartAlways || s.Entrypoint[0] != "/usr/local/bin/etcdutl" || s.Image != "registry.k8s.io/etcd:3.7.0-0" {
		t.Errorf("spec %+v", s)
	}
	if m := s.Mounts[0]; m.Source != "/backup/x.db" || !m.ReadOnly {
		t.Errorf("the snapshot should be bound read-only: %+v", m)
	}
}

func TestRestoreRefusesBeforeChangingAnything(t *testing.T) {
	f := newStartFixture(t)
	if err := f.start(t); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "etcd-x.db")
	os.WriteFile(file, snapshotBytes(), 0o600)
	data := filepath.Join(f.cfg.Dir, "etcd")
	os.WriteFile(filepath.Join(data, "keep"), []byte("the data etcd has"), 0o600)
	calls := len(f.engine.Calls)
	restore := func(members int) error {
		return RestoreSnapshot(context.Background(), f.engine, Config{ClusterName: "dk8s", Dir: f.cfg.Dir}, file, RestoreOptions{
			members: func(context.Context) ([]etcdc.Member, error) {
				return slices.Repeat([]etcdc.Member{{Name: "cp"}}, members), nil
			},
		})
	}

	// Several members: a snapshot is restored on a cluster of one.
	err := restore(3)
	if err == nil || !strings.Contains(err.Error(), "3 members") || !strings.Contains(err.Error(), "join them again") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Errorf("restore on three members: %v", err)
	}
	// A snapshot whose sum file disagrees.
	os.WriteFile(file+etcdc.SumSuffix, []byte(strings.Repeat("0", 64)+"  etcd-x.db\n"), 0o600)
	if err := restore(1); !errors.Is(err, etcdc.ErrMismatch) || !strings.Contains(err.Error(), "nothing was changed") {
		t.Errorf("restore of a tampered snapshot: %v", err)
	}
	if len(f.engine.Calls) != calls {
		t.Errorf("a refused restore called the engine: %v", f.engine.Calls[calls:])
	}
	if got, _ := os.ReadFile(filepath.Join(data, "keep")); string(got) != "the data etcd has" {
		t.Error("a refused restore touched etcd's data")
	}
	entries, _ := os.ReadDir(f.cfg.Dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "etcd.") {
			t.Errorf("a refused restore left %s", e.Name())
		}
	}
}

func TestSnapshotScheduleGoesOnFromTheNewestScheduledSnapshot(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	if got := firstDue(dir, time.Hour, now); !got.Equal(now.Add(time.Hour)) {
		t.Errorf("with no snapshot, the first is due an interval from now: %v", got)
	}
	for _, name := range []string{
		etcdc.SnapshotName(now.Add(-20*time.Minute), true),
		etcdc.SnapshotName(now.Add(-5*time.Minute), false), // saved by hand: not the schedule's
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got := firstDue(dir, time.Hour, now); !got.Equal(now.Add(40 * time.Minute)) {
		t.Errorf("a scheduled snapshot 20 minutes old: the next is due in 40, got %v", got.Sub(now))
	}
	if got := firstDue(dir, 10*time.Minute, now); !got.Equal(now) {
		t.Errorf("an overdue schedule takes one at once, got %v", got.Sub(now))
	}
}
