package etcd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var ctx = context.Background()

func twoMembers() *fakeAPI {
	return &fakeAPI{
		members: []*pb.Member{
			{ID: 0xa1, Name: "cp1", PeerURLs: []string{"https://10.0.0.1:2380"}, ClientURLs: []string{"https://10.0.0.1:2379"}},
			{ID: 0xb2, Name: "cp2", PeerURLs: []string{"https://10.0.0.2:2380"}, ClientURLs: []string{"https://10.0.0.2:2379"}},
		},
		status: map[string]*clientv3.StatusResponse{
			"https://10.0.0.1:2379": {Header: &pb.ResponseHeader{Revision: 42}, Version: "3.7.0", DbSize: 4096, DbSizeInUse: 1024, Leader: 0xa1, RaftIndex: 9},
		},
	}
}

func TestStatusReportsMembersLeaderAndWhatIsWrong(t *testing.T) {
	f := twoMembers()
	f.alarms = []*pb.AlarmMember{{MemberID: 0xa1, Alarm: pb.AlarmType_NOSPACE}}
	st, err := NewFromAPI(f, nil).Status(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st.LeaderName != "cp1" || len(st.Members) != 2 || st.Members[1].IDString() != "b2" {
		t.Errorf("status = %+v", st)
	}
	if e := st.Endpoints[0]; e.DBSize != 4096 || e.DBSizeInUse != 1024 || e.Version != "3.7.0" || e.MemberID != 0xa1 || e.Unreachable != "" {
		t.Errorf("cp1's status = %+v", e)
	}
	if e := st.Endpoints[1]; e.Unreachable == "" || e.MemberID != 0xb2 {
		t.Errorf("cp2 does not answer, yet %+v", e)
	}
	if !st.HasAlarm(AlarmNoSpace) {
		t.Errorf("alarms = %+v", st.Alarms)
	}
	problems := strings.Join(st.Problems(), "\n")
	for _, want := range []string{"alarm NOSPACE raised by member cp1", "member at https://10.0.0.2:2379 is unreachable"} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems lack %q:\n%s", want, problems)
		}
	}
}

func TestStatusOfAHealthyMemberHasNoProblems(t *testing.T) {
	f := twoMembers()
	f.members = f.members[:1]
	st, err := NewFromAPI(f, nil).Status(ctx, time.Second)
	if err != nil || len(st.Problems()) != 0 {
		t.Errorf("status %+v, err %v, problems %v", st, err, st.Problems())
	}
}

func TestAddLearnerSaysWhatTheNewMemberStartsWith(t *testing.T) {
	f := twoMembers()
	added, err := NewFromAPI(f, nil).AddLearner(ctx, "cp3", "https://10.0.0.3:2380")
	if err != nil {
		t.Fatal(err)
	}
	if !added.Member.Learner || added.Member.Name != "cp3" || added.Member.ID != 0xbeef {
		t.Errorf("added %+v", added.Member)
	}
	want := "cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380,cp3=https://10.0.0.3:2380"
	if added.InitialCluster != want {
		t.Errorf("initial cluster %q, want %q", added.InitialCluster, want)
	}
	if _, err := NewFromAPI(f, nil).AddLearner(ctx, "", "https://10.0.0.3:2380"); err == nil {
		t.Error("a member without a name was added")
	}
}

func TestPromoteWaitsForTheLearnerToCatchUp(t *testing.T) {
	f := twoMembers()
	c := NewFromAPI(f, nil)
	added, _ := c.AddLearner(ctx, "cp3", "https://10.0.0.3:2380")
	f.promoteNotReady = 2
	if err := c.Promote(ctx, added.Member.ID, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 3 || f.members[2].IsLearner {
		t.Errorf("calls %v, learner %v", f.calls, f.members[2].IsLearner)
	}
	// A rerun finds it a voter already: done.
	if err := c.Promote(ctx, added.Member.ID, time.Millisecond); err != nil {
		t.Errorf("promoting a voter again: %v", err)
	}
	f.promoteNotReady = 1000
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := c.Promote(short, added.Member.ID, time.Millisecond); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "caught up") {
		t.Errorf("a learner that never catches up: %v", err)
	}
	if err := c.Promote(ctx, 0x404, time.Millisecond); err == nil {
		t.Error("promoting an unknown member succeeded")
	}
}

func TestRemoveIsDoneWhenTheMemberIsGone(t *testing.T) {
	f := twoMembers()
	c := NewFromAPI(f, nil)
	for i := 0; i < 2; i++ {
		if err := c.Remove(ctx, 0xb2); err != nil {
			t.Fatalf("remove %d: %v", i, err)
		}
	}
	ms, _ := c.Members(ctx)
	if _, ok := MemberNamed(ms, "cp2"); ok || len(ms) != 1 {
		t.Errorf("members %+v", ms)
	}
}

func TestDefragmentCompactsDefragmentsEachMemberAndDisarmsNoSpace(t *testing.T) {
	f := twoMembers()
	f.status["https://10.0.0.2:2379"] = &clientv3.StatusResponse{Header: &pb.ResponseHeader{Revision: 42}, DbSize: 8192, DbSizeInUse: 2048}
	f.alarms = []*pb.AlarmMember{{MemberID: 0xa1, Alarm: pb.AlarmType_NOSPACE}, {MemberID: 0xb2, Alarm: pb.AlarmType_CORRUPT}}
	f.compacted = true // the apiserver compacted to the same revision: fine
	d, err := NewFromAPI(f, nil).Defragment(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"compact", "defragment https://10.0.0.1:2379", "defragment https://10.0.0.2:2379", "disarm NOSPACE"}
	if !slices.Equal(f.calls, want) {
		t.Errorf("calls %v, want %v", f.calls, want)
	}
	if len(d.Members) != 2 || d.Members[1].Before != 8192 || d.Members[1].After != 2048 {
		t.Errorf("members %+v", d.Members)
	}
	if len(d.Disarmed) != 1 || d.Disarmed[0].Member != "cp1" || len(f.alarms) != 1 {
		t.Errorf("disarmed %+v, left %+v: a CORRUPT alarm is not defrag's to disarm", d.Disarmed, f.alarms)
	}
}

func TestSaveWritesTheSnapshotAndItsSumAndNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	f := &fakeAPI{snapshot: fakeSnapshot(3)}
	c := NewFromAPI(f, nil)
	path := filepath.Join(dir, SnapshotName(time.Date(2025, 11, 23, 18, 44, 0, 0, time.UTC), false))
	info, err := c.Save(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "etcd-20251123T184400Z.db" || info.Size != int64(len(f.snapshot)) || info.Scheduled || info.Version != "3.7.0" {
		t.Errorf("info %+v", info)
	}
	for _, p := range []string{path, path + SumSuffix} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v: a snapshot holds every Secret", p, err, st.Mode())
		}
	}
	sum, _ := os.ReadFile(path + SumSuffix)
	if string(sum) != info.SHA256+"  etcd-20251123T184400Z.db\n" {
		t.Errorf("sum file %q is not as sha256sum writes it", sum)
	}
	if _, err := Verify(path); err != nil {
		t.Errorf("verify: %v", err)
	}
	if _, err := c.Save(ctx, path); err == nil || !strings.Contains(err.Error(), "never overwrites") {
		t.Errorf("saving over a snapshot: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("left behind: %v", entries)
	}
}

func TestSaveRefusesWhatIsNoEtcdSnapshot(t *testing.T) {
	dir := t.TempDir()
	c := NewFromAPI(&fakeAPI{snapshot: []byte("half a snapshot")}, nil)
	if _, err := c.Save(ctx, filepath.Join(dir, "x.db")); !errors.Is(err, ErrMismatch) {
		t.Errorf("save of a cut stream: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a failed save left %v", entries)
	}
}

func TestVerifyRefusesATamperedSnapshot(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "etcd-x.db")
	c := NewFromAPI(&fakeAPI{snapshot: fakeSnapshot(2)}, nil)
	if _, err := c.Save(ctx, path); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	data[100] ^= 0xff
	os.WriteFile(path, data, 0o600)
	if _, err := Verify(path); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "etcd-x.db.sha256 says") {
		t.Errorf("against its sum file: %v", err)
	}
	// Without its sum file, etcd's own sum at its end still tells.
	os.Remove(path + SumSuffix)
	if _, err := Verify(path); !errors.Is(err, ErrMismatch) {
		t.Errorf("against etcd's own sum: %v", err)
	}
}

func TestListAndPruneKeepTheUsersSnapshots(t *testing.T) {
	dir := t.TempDir()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var scheduled []string
	for i := 0; i < 5; i++ {
		name := SnapshotName(base.Add(time.Duration(i)*time.Hour), true)
		scheduled = append(scheduled, name)
		os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600)
		os.WriteFile(filepath.Join(dir, name+SumSuffix), []byte("x"), 0o600)
	}
	mine := SnapshotName(base.Add(-time.Hour), false) // older than every scheduled one
	os.WriteFile(filepath.Join(dir, mine), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dir, "by-hand.db"), []byte("x"), 0o600)
	os.Chtimes(filepath.Join(dir, "by-hand.db"), base.Add(-2*time.Hour), base.Add(-2*time.Hour)) // by its file's time
	os.WriteFile(filepath.Join(dir, ".etcd-scheduled-x.db.part-1"), []byte("x"), 0o600)

	all, err := List(dir)
	if err != nil || len(all) != 7 || filepath.Base(all[0].Path) != scheduled[4] || !all[0].Scheduled || filepath.Base(all[6].Path) != "by-hand.db" {
		t.Fatalf("list: %v %+v", err, all)
	}
	deleted, err := Prune(dir, 2)
	if err != nil || len(deleted) != 3 {
		t.Fatalf("prune: %v %v", err, deleted)
	}
	var left []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		left = append(left, e.Name())
	}
	want := []string{".etcd-scheduled-x.db.part-1", "by-hand.db", mine, scheduled[3], scheduled[3] + SumSuffix, scheduled[4], scheduled[4] + SumSuffix}
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
	if _, err := Prune(dir, 0); err == nil {
		t.Error("prune to 0 should be refused")
	}
}
