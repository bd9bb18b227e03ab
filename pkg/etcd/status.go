package etcd

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Member is one member of the cluster.
type Member struct {
	ID         uint64   `json:"-"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs"`
	// Learner is a member that receives the log but does not vote yet.
	Learner bool `json:"learner"`
}

// IDString is the member's ID as etcdctl prints it: hexadecimal.
func (m Member) IDString() string { return FormatID(m.ID) }

// FormatID writes a member ID as etcdctl does.
func FormatID(id uint64) string { return fmt.Sprintf("%x", id) }

// EndpointStatus is what one member says of itself at its client URL, or
// why it did not answer.
type EndpointStatus struct {
	Endpoint string `json:"endpoint"`
	MemberID uint64 `json:"-"`
	Version  string `json:"version,omitempty"`
	// DBSize is the backend file's size; DBSizeInUse what of it holds
	// data (the rest a defragmentation gives back).
	DBSize      int64  `json:"dbSize"`
	DBSizeInUse int64  `json:"dbSizeInUse"`
	RaftIndex   uint64 `json:"raftIndex"`
	RaftTerm    uint64 `json:"raftTerm"`
	Leader      uint64 `json:"-"`
	// Errors are the member's own (an alarm it raised, say).
	Errors []string `json:"errors,omitempty"`
	// Unreachable says why the member did not answer; "" when it did.
	Unreachable string `json:"unreachable,omitempty"`
}

// Alarm is an alarm a member raised: NOSPACE (writes are refused) or
// CORRUPT.
type Alarm struct {
	MemberID uint64 `json:"-"`
	Member   string `json:"member"`
	Type     string `json:"type"`
}

// The alarms etcd raises.
const (
	AlarmNoSpace = "NOSPACE"
	AlarmCorrupt = "CORRUPT"
)

// Status is the cluster as its members report it.
type Status struct {
	Members []Member `json:"members"`
	// Leader is the leader's member ID; 0 when no member knows of one.
	Leader     uint64           `json:"-"`
	LeaderName string           `json:"leader"`
	Endpoints  []EndpointStatus `json:"endpoints"`
	Alarms     []Alarm          `json:"alarms"`
}

// HasAlarm tells whether an alarm of typ is active.
func (s *Status) HasAlarm(typ string) bool {
	return slices.ContainsFunc(s.Alarms, func(a Alarm) bool { return a.Type == typ })
}

// Problems lists what is wrong, one sentence each: every active alarm, every
// member that did not answer, and a cluster without a leader.
func (s *Status) Problems() []string {
	var out []string
	for _, a := range s.Alarms {
		out = append(out, fmt.Sprintf("alarm %s raised by member %s", a.Type, a.Member))
	}
	for _, e := range s.Endpoints {
		if e.Unreachable != "" {
			out = append(out, fmt.Sprintf("member at %s is unreachable: %s", e.Endpoint, e.Unreachable))
		}
	}
	if s.Leader == 0 {
		out = append(out, "no member knows of a leader")
	}
	return out
}

// memberName names id by the member list, or by its ID when the list does
// not know it.
func memberName(members []Member, id uint64) string {
	for _, m := range members {
		if m.ID == id && m.Name != "" {
			return m.Name
		}
	}
	return FormatID(id)
}

// Members lists the cluster's members.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	resp, err := c.api.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing etcd's members at %s: %w", strings.Join(c.endpoints, ","), err)
	}
	return members(resp.Members), nil
}

func members(pbs []*pb.Member) []Member {
	out := make([]Member, 0, len(pbs))
	for _, m := range pbs {
		out = append(out, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner})
	}
	return out
}

// Status asks the members for the cluster's state: the member list, then
// each member's own status at its first client URL (in parallel, each
// within perMember), then the active alarms. A member that does not
// answer is reported in its EndpointStatus, not as an error.
func (c *Client) Status(ctx context.Context, perMember time.Duration) (*Status, error) {
	// The member's own view (serializable): a cluster that has lost its
	// quorum, when its status matters most, answers no linearizable read.
	resp, err := c.api.MemberList(ctx, clientv3.WithSerializable())
	if err != nil {
		return nil, fmt.Errorf("listing etcd's members at %s: %w", strings.Join(c.endpoints, ","), err)
	}
	ms := members(resp.Members)
	st := &Status{Members: ms, Endpoints: make([]EndpointStatus, len(ms))}
	var wg sync.WaitGroup
	for i, m := range ms {
		st.Endpoints[i] = EndpointStatus{MemberID: m.ID}
		if len(m.ClientURLs) == 0 {
			st.Endpoints[i].Endpoint = m.Name
			st.Endpoints[i].Unreachable = "it has no client URL: it was added but has not started"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := c.endpointStatus(ctx, m.ClientURLs[0], perMember)
			e.MemberID = m.ID
			st.Endpoints[i] = e
		}()
	}
	wg.Wait()
	for _, e := range st.Endpoints {
		if e.Unreachable == "" && e.Leader != 0 {
			st.Leader = e.Leader
		}
	}
	if st.Leader != 0 {
		st.LeaderName = memberName(ms, st.Leader)
	}
	if st.Leader == 0 {
		// Alarms are read through the leader: with none, they are unknown,
		// and the missing leader is the problem to report.
		return st, nil
	}
	alarms, err := c.api.AlarmList(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing etcd's alarms: %w", err)
	}
	for _, a := range alarms.Alarms {
		if a.Alarm == pb.AlarmType_NONE {
			continue
		}
		st.Alarms = append(st.Alarms, Alarm{MemberID: a.MemberID, Member: memberName(ms, a.MemberID), Type: a.Alarm.String()})
	}
	return st, nil
}

func (c *Client) endpointStatus(ctx context.Context, endpoint string, timeout time.Duration) EndpointStatus {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := EndpointStatus{Endpoint: endpoint}
	resp, err := c.api.Status(ctx, endpoint)
	if err != nil {
		out.Unreachable = err.Error()
		return out
	}
	out.Version, out.DBSize, out.DBSizeInUse = resp.Version, resp.DbSize, resp.DbSizeInUse
	out.RaftIndex, out.RaftTerm, out.Leader, out.Errors = resp.RaftIndex, resp.RaftTerm, resp.Leader, resp.Errors
	return out
}

var _ API = (*clientv3.Client)(nil)
