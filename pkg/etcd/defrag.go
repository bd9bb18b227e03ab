package etcd

import (
	"context"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Defragmented is what Defragment did.
type Defragmented struct {
	// Revision is the revision history was compacted to; 0 when it was
	// compacted there already.
	Revision int64
	// Members are the members defragmented, in turn.
	Members []DefragmentedMember
	// Disarmed are the NOSPACE alarms it disarmed.
	Disarmed []Alarm
}

// DefragmentedMember is one member's database size before and after.
type DefragmentedMember struct {
	Endpoint      string
	Before, After int64
}

// Defragment gives a full etcd its space back and lets it take writes
// again: it compacts the history to the current revision (the apiserver
// compacts it too, but every five minutes, and not while writes fail), then
// defragments every member in turn, then disarms the NOSPACE alarms. A
// member still out of space raises its alarm again at the next write; free
// disk space first.
func (c *Client) Defragment(ctx context.Context) (Defragmented, error) {
	var out Defragmented
	ms, err := c.Members(ctx)
	if err != nil {
		return out, err
	}
	var endpoints []string
	for _, m := range ms {
		if len(m.ClientURLs) == 0 {
			return out, fmt.Errorf("etcd member %s has no client URL (it has not started): start it or remove it first", m.Name)
		}
		endpoints = append(endpoints, m.ClientURLs[0])
	}
	st, err := c.api.Status(ctx, endpoints[0])
	if err != nil {
		return out, fmt.Errorf("asking %s for its revision: %w", endpoints[0], err)
	}
	rev := st.Header.GetRevision()
	if _, err := c.api.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil && !isErr(err, rpctypes.ErrGRPCCompacted) {
		return out, fmt.Errorf("compacting etcd's history to revision %d: %w", rev, err)
	} else if err == nil {
		out.Revision = rev
	}
	for _, ep := range endpoints {
		m := DefragmentedMember{Endpoint: ep}
		if s, err := c.api.Status(ctx, ep); err == nil {
			m.Before = s.DbSize
		}
		if _, err := c.api.Defragment(ctx, ep); err != nil {
			return out, fmt.Errorf("defragmenting the etcd member at %s: %w", ep, err)
		}
		if s, err := c.api.Status(ctx, ep); err == nil {
			m.After = s.DbSize
		}
		out.Members = append(out.Members, m)
	}
	alarms, err := c.api.AlarmList(ctx)
	if err != nil {
		return out, fmt.Errorf("listing etcd's alarms: %w", err)
	}
	for _, a := range alarms.Alarms {
		if a.Alarm != pb.AlarmType_NOSPACE {
			continue
		}
		if _, err := c.api.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: a.MemberID, Alarm: a.Alarm}); err != nil {
			return out, fmt.Errorf("disarming the NOSPACE alarm of member %s: %w", memberName(ms, a.MemberID), err)
		}
		out.Disarmed = append(out.Disarmed, Alarm{MemberID: a.MemberID, Member: memberName(ms, a.MemberID), Type: AlarmNoSpace})
	}
	return out, nil
}
