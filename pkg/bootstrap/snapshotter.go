package bootstrap

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/dk8s/dk8s/pkg/containers"
	etcdc "github.com/dk8s/dk8s/pkg/etcd"
	"github.com/dk8s/dk8s/pkg/pki"
)

// The schedule of etcd snapshots a cluster gets unless told otherwise:
// k3s's, every 12 hours, the newest 5 kept.
const (
	DefaultSnapshotInterval  = 12 * time.Hour
	DefaultSnapshotRetention = 5
)

// snapshotterHealth is where the snapshotter answers for its health:
// loopback.
const snapshotterHealth = "127.0.0.1:10271"

// snapshotsMount is where the snapshotter finds DIR/snapshots.
const snapshotsMount = "/var/lib/dk8s-snapshots"

// SnapshotsDir is where a cluster's etcd snapshots are kept: the
// schedule's and, by default, those 'dk8s etcd snapshot save' takes.
func (c Config) SnapshotsDir() string { return filepath.Join(c.Dir, "snapshots") }

// snapshotSchedule is the schedule cfg asks for, its defaults for what it
// leaves unset.
func (c Config) snapshotSchedule() (time.Duration, int) {
	interval, keep := DefaultSnapshotInterval, DefaultSnapshotRetention
	if c.SnapshotInterval != nil {
		interval = *c.SnapshotInterval
	}
	if c.SnapshotRetention > 0 {
		keep = c.SnapshotRetention
	}
	return interval, keep
}

// etcdSnapshotter takes etcd snapshots on a schedule into DIR/snapshots
// and keeps the newest of them. It is dk8s itself, as the csr-approver is,
// with a client certificate of etcd's CA of its own and the snapshots
// directory, nothing else. An interval of 0 leaves it running idle, saying
// so in its health, so that ps and the start's order stay the same.
func etcdSnapshotter() Component {
	return Component{
		Name:   "etcd-snapshotter",
		Ports:  []int{10271},
		Health: Endpoint{URL: "http://" + snapshotterHealth + "/healthz"},
		Hint:   "'dk8s logs etcd-snapshotter'; its health says why the last snapshot failed (a full disk under the cluster directory, etcd down)",
		Certs: func(PKIConfig) []pki.CertSpec {
			return []pki.CertSpec{{Name: "etcd/snapshotter", CA: "etcd/ca", CommonName: "dk8s-etcd-snapshotter", Usages: clientAuth}}
		},
		ImageOf:    "pause",
		Entrypoint: []string{shimTarget, "etcd", "snapshot", "schedule"},
		Flags: func(cfg Config) map[string]string {
			interval, keep := cfg.snapshotSchedule()
			return map[string]string{
				"cacert":         pkiPath("etcd/ca.crt"),
				"cert":           pkiPath("etcd/snapshotter.crt"),
				"key":            pkiPath("etcd/snapshotter.key"),
				"endpoints":      etcdc.DefaultEndpoint,
				"snapshot-dir":   snapshotsMount,
				"interval":       interval.String(),
				"retention":      strconv.Itoa(keep),
				"health-address": snapshotterHealth,
			}
		},
		Mounts: func(cfg Config) []containers.Mount {
			return []containers.Mount{
				{Source: shimPath(cfg.Dir), Target: shimTarget, ReadOnly: true},
				{Source: cfg.SnapshotsDir(), Target: snapshotsMount},
			}
		},
		User: "0:0",
	}
}

// Snapshotter takes a snapshot of etcd every Interval into Dir, named as
// scheduled (etcdc.SnapshotName), and keeps the newest Keep of those.
type Snapshotter struct {
	Client   *etcdc.Client
	Dir      string
	Interval time.Duration
	Keep     int
	// Log hears of each snapshot and failure.
	Log func(string)

	mu    sync.Mutex
	state snapshotState
}

type snapshotState struct {
	started  time.Time
	lastTick time.Time
	lastGood etcdc.SnapshotInfo
	failedAt time.Time
	failure  error
}

// Run takes snapshots until ctx ends, answering for its health at
// healthAddr: healthy while the last snapshot succeeded (or none was due
// yet), saying when it was taken; unhealthy, saying why, once one failed.
func (s *Snapshotter) Run(ctx context.Context, healthAddr string) error {
	ln, err := net.Listen("tcp", healthAddr)
	if err != nil {
		return err
	}
	s.state.started = time.Now()
	srv := &http.Server{Handler: http.HandlerFunc(s.serveHealth), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	if s.Interval <= 0 {
		<-ctx.Done()
		return nil
	}
	// The schedule goes on from the newest scheduled snapshot, not from
	// this start: a host that restarts more often than the interval still
	// gets its snapshots.
	next := firstDue(s.Dir, s.Interval, time.Now())
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Until(next)):
		}
		now := time.Now()
		s.takeOne(ctx, now)
		next = now.Add(s.Interval)
	}
}

// firstDue is when the first snapshot of a run is due: an interval after
// the newest scheduled one in dir, at once when that is overdue, an
// interval from now when there is none.
func firstDue(dir string, interval time.Duration, now time.Time) time.Time {
	list, _ := etcdc.List(dir)
	var newest time.Time
	for _, info := range list {
		if info.Scheduled && info.Time.After(newest) {
			newest = info.Time
		}
	}
	if newest.IsZero() {
		return now.Add(interval)
	}
	if due := newest.Add(interval); due.After(now) {
		return due
	}
	return now
}

// takeOne takes the snapshot due at now and prunes the old ones.
func (s *Snapshotter) takeOne(ctx context.Context, now time.Time) {
	// A snapshot may take as long as the interval, not longer: the next
	// one is due then.
	ctx, cancel := context.WithTimeout(ctx, max(s.Interval, time.Minute))
	defer cancel()
	info, err := s.Client.Save(ctx, filepath.Join(s.Dir, etcdc.SnapshotName(now, true)))
	if err == nil {
		var pruned []string
		pruned, err = etcdc.Prune(s.Dir, s.Keep)
		for _, p := range pruned {
			s.Log("deleted the old scheduled snapshot " + filepath.Base(p))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state.lastTick = now
	if err != nil {
		s.state.failedAt, s.state.failure = now, err
		s.Log("snapshot failed: " + err.Error())
		return
	}
	s.state.lastGood, s.state.failure = info, nil
	s.Log(fmt.Sprintf("saved %s (%d bytes, sha256 %s)", filepath.Base(info.Path), info.Size, info.SHA256))
}

func (s *Snapshotter) serveHealth(w http.ResponseWriter, _ *http.Request) {
	code, msg := s.health(time.Now())
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// health is the snapshotter's health at now: an HTTP status and what it
// says.
func (s *Snapshotter) health(now time.Time) (int, string) {
	s.mu.Lock()
	st := s.state
	s.mu.Unlock()
	if s.Interval <= 0 {
		return http.StatusOK, "scheduled snapshots are off ('dk8s start --etcd-snapshot-interval' turns them on)"
	}
	last := "no snapshot yet"
	if st.lastGood.Path != "" {
		last = fmt.Sprintf("last snapshot %s at %s", filepath.Base(st.lastGood.Path), st.lastGood.Time.Format(time.RFC3339))
	}
	if st.failure != nil {
		return http.StatusServiceUnavailable, fmt.Sprintf("the snapshot at %s failed: %v; %s", st.failedAt.UTC().Format(time.RFC3339), st.failure, last)
	}
	next := st.started
	if !st.lastTick.IsZero() {
		next = st.lastTick
	}
	return http.StatusOK, fmt.Sprintf("%s; every %s, the newest %d kept, the next due by %s", last, s.Interval, s.Keep, next.Add(s.Interval).UTC().Format(time.RFC3339))
}
