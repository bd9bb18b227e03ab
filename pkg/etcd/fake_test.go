package etcd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// fakeAPI is an etcd of members in memory; a test overrides what it needs.
type fakeAPI struct {
	API
	members  []*pb.Member
	status   map[string]*clientv3.StatusResponse // by endpoint; missing = unreachable
	alarms   []*pb.AlarmMember
	snapshot []byte
	calls    []string
	// promoteNotReady is how many promotions etcd refuses as not in sync.
	promoteNotReady int
	compacted       bool
}

func (f *fakeAPI) MemberList(context.Context, ...clientv3.OpOption) (*clientv3.MemberListResponse, error) {
	return &clientv3.MemberListResponse{Members: f.members}, nil
}

func (f *fakeAPI) MemberAddAsLearner(_ context.Context, peers []string) (*clientv3.MemberAddResponse, error) {
	m := &pb.Member{ID: 0xbeef, PeerURLs: peers, IsLearner: true}
	f.members = append(f.members, m)
	return &clientv3.MemberAddResponse{Member: m, Members: f.members}, nil
}

func (f *fakeAPI) MemberPromote(_ context.Context, id uint64) (*clientv3.MemberPromoteResponse, error) {
	f.calls = append(f.calls, "promote")
	if f.promoteNotReady > 0 {
		f.promoteNotReady--
		return nil, rpctypes.Error(rpctypes.ErrGRPCLearnerNotReady)
	}
	for _, m := range f.members {
		if m.ID == id {
			if !m.IsLearner {
				return nil, rpctypes.Error(rpctypes.ErrGRPCMemberNotLearner)
			}
			m.IsLearner = false
			return &clientv3.MemberPromoteResponse{}, nil
		}
	}
	return nil, rpctypes.Error(rpctypes.ErrGRPCMemberNotFound)
}

func (f *fakeAPI) MemberRemove(_ context.Context, id uint64) (*clientv3.MemberRemoveResponse, error) {
	for i, m := range f.members {
		if m.ID == id {
			f.members = append(f.members[:i], f.members[i+1:]...)
			return &clientv3.MemberRemoveResponse{}, nil
		}
	}
	return nil, rpctypes.Error(rpctypes.ErrGRPCMemberNotFound)
}

func (f *fakeAPI) Status(_ context.Context, ep string) (*clientv3.StatusResponse, error) {
	if s, ok := f.status[ep]; ok {
		return s, nil
	}
	return nil, errors.New("context deadline exceeded")
}

func (f *fakeAPI) AlarmList(context.Context) (*clientv3.AlarmResponse, error) {
	return &clientv3.AlarmResponse{Alarms: f.alarms}, nil
}

func (f *fakeAPI) AlarmDisarm(_ context.Context, m *clientv3.AlarmMember) (*clientv3.AlarmResponse, error) {
	f.calls = append(f.calls, "disarm "+m.Alarm.String())
	var left []*pb.AlarmMember
	for _, a := range f.alarms {
		if a.MemberID != m.MemberID || a.Alarm != m.Alarm {
			left = append(left, a)
		}
	}
	f.alarms = left
	return &clientv3.AlarmResponse{}, nil
}

func (f *fakeAPI) Defragment(_ context.Context, ep string) (*clientv3.DefragmentResponse, error) {
	f.calls = append(f.calls, "defragment "+ep)
	if s, ok := f.status[ep]; ok {
		s.DbSize = s.DbSizeInUse
	}
	return &clientv3.DefragmentResponse{}, nil
}

func (f *fakeAPI) Compact(_ context.Context, rev int64, _ ...clientv3.CompactOption) (*clientv3.CompactResponse, error) {
	f.calls = append(f.calls, "compact")
	if f.compacted {
		return nil, rpctypes.Error(rpctypes.ErrGRPCCompacted)
	}
	return &clientv3.CompactResponse{}, nil
}

func (f *fakeAPI) SnapshotWithVersion(context.Context) (*clientv3.SnapshotResponse, error) {
	return &clientv3.SnapshotResponse{Snapshot: io.NopCloser(bytes.NewReader(f.snapshot)), Version: "3.7.0"}, nil
}

// fakeSnapshot is what etcd streams: a database of whole pages and the
// sha256 of it.
func fakeSnapshot(pages int) []byte {
	db := bytes.Repeat([]byte("etcd"), pages*128)
	sum := sha256.Sum256(db)
	return append(db, sum[:]...)
}
