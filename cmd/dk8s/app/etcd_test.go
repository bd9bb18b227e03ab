package app

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dk8s/dk8s/pkg/etcd"
)

func TestEtcdStatusTable(t *testing.T) {
	st := &etcd.Status{
		Members: []etcd.Member{
			{ID: 0x8e9e05c52164694d, Name: "node-1", PeerURLs: []string{"https://127.0.0.1:2380"}, ClientURLs: []string{"https://127.0.0.1:2379"}},
			{ID: 0x2a, Name: "node-2", PeerURLs: []string{"https://10.0.0.2:2380"}, Learner: true},
		},
		Leader: 0x8e9e05c52164694d, LeaderName: "node-1",
		Endpoints: []etcd.EndpointStatus{
			{Endpoint: "https://127.0.0.1:2379", MemberID: 0x8e9e05c52164694d, Version: "3.7.0", DBSize: 20 << 20, DBSizeInUse: 5 << 20, RaftIndex: 1234},
			{Endpoint: "node-2", MemberID: 0x2a, Unreachable: "it has no client URL"},
		},
		Alarms: []etcd.Alarm{{MemberID: 0x8e9e05c52164694d, Member: "node-1", Type: etcd.AlarmNoSpace}},
	}
	var out bytes.Buffer
	if err := printEtcdStatus(&out, st); err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]string{
		{"node-1", "8e9e05c52164694d", "leader", "https://127.0.0.1:2380", "https://127.0.0.1:2379"},
		{"node-2", "2a", "learner", "https://10.0.0.2:2380", "-"},
		{"https://127.0.0.1:2379", "3.7.0", "20.0", "MiB", "5.0", "MiB", "1234", "ok"},
		{"node-2", "-", "-", "-", "-", "unreachable:"},
		{"ALARM:", "NOSPACE", "(member", "node-1)"},
	} {
		found := false
		for _, line := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(strings.Join(strings.Fields(line), " "), strings.Join(want, " ")) {
				found = true
			}
		}
		if !found {
			t.Errorf("no line %q in:\n%s", want, out.String())
		}
	}
	v := etcdStatusView(st)
	if v.Members[0].ID != "8e9e05c52164694d" || v.Endpoints[1].Member != "2a" || len(v.Problems) != 2 {
		t.Errorf("json view %+v", v)
	}
}

func TestSnapshotListNewestFirstAndWhoTookThem(t *testing.T) {
	dir := t.TempDir()
	snaps := filepath.Join(dir, "snapshots")
	os.MkdirAll(snaps, 0o700)
	for _, n := range []string{"etcd-20250101T000000Z.db", "etcd-scheduled-20250102T000000Z.db", "etcd-scheduled-20250102T000000Z.db.sha256"} {
		os.WriteFile(filepath.Join(snaps, n), []byte("x"), 0o600)
	}
	stdout, _, err := runFake(t, fakeHost(), "etcd", "snapshot", "list", "--dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "etcd-scheduled-20250102T000000Z.db") || !strings.Contains(lines[1], "scheduled") ||
		!strings.HasPrefix(lines[2], "etcd-20250101T000000Z.db") || !strings.Contains(lines[2], "saved") || !strings.Contains(lines[2], "2025-01-01T00:00:00Z") {
		t.Errorf("list:\n%s", stdout)
	}
	_, stderr, err := runFake(t, fakeHost(), "etcd", "snapshot", "list", "--dir", t.TempDir())
	if err != nil || !strings.Contains(stderr, "No snapshots") {
		t.Errorf("an empty list: %v %q", err, stderr)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 2 << 30: "2.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
