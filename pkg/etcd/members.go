package etcd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Added is a member just added to the cluster, and what it must start
// with: etcd's --initial-cluster (every member's name and peer URL, its
// own included) and --initial-cluster-state=existing.
type Added struct {
	Member         Member
	InitialCluster string
}

// AddLearner adds a member named name, reached by its peers at peerURL, as
// a learner: it receives the log but does not vote, so a member that never
// starts, or takes long to catch up, cannot cost the cluster its quorum.
// Promote it once it runs.
func (c *Client) AddLearner(ctx context.Context, name, peerURL string) (Added, error) {
	if name == "" || peerURL == "" {
		return Added{}, errors.New("a new etcd member needs a name and a peer URL")
	}
	resp, err := c.api.MemberAddAsLearner(ctx, []string{peerURL})
	if err != nil {
		return Added{}, fmt.Errorf("adding etcd member %s (%s) as a learner: %w", name, peerURL, err)
	}
	if resp.Member == nil {
		return Added{}, fmt.Errorf("adding etcd member %s: etcd answered without the member", name)
	}
	added := Member{ID: resp.Member.ID, Name: name, PeerURLs: resp.Member.PeerURLs, Learner: true}
	all := members(resp.Members)
	for i := range all {
		if all[i].ID == added.ID {
			all[i].Name = name // a member that has not started has no name yet
		}
	}
	return Added{Member: added, InitialCluster: InitialCluster(all)}, nil
}

// InitialCluster is etcd's --initial-cluster for members: NAME=PEER_URL
// for each peer URL of each, sorted by name so that the flag, and the
// spec it is part of, is the same whichever member is asked.
func InitialCluster(members []Member) string {
	var parts []string
	for _, m := range members {
		for _, u := range m.PeerURLs {
			parts = append(parts, m.Name+"="+u)
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// Promote makes the learner id a voting member. etcd refuses while the
// learner's log is behind the leader's; Promote asks again every interval
// until it is taken, the learner is found to be a voter already, or ctx
// ends.
func (c *Client) Promote(ctx context.Context, id uint64, interval time.Duration) error {
	for {
		_, err := c.api.MemberPromote(ctx, id)
		switch {
		case err == nil, isErr(err, rpctypes.ErrGRPCMemberNotLearner):
			return nil
		case !isErr(err, rpctypes.ErrGRPCLearnerNotReady):
			return fmt.Errorf("promoting etcd member %s: %w", FormatID(id), err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("promoting etcd member %s: it has not caught up with the leader: %w", FormatID(id), ctx.Err())
		case <-time.After(interval):
		}
	}
}

// Remove takes member id out of the cluster. One that is already gone is
// not an error: a rerun of a control plane's reset finds it so.
func (c *Client) Remove(ctx context.Context, id uint64) error {
	_, err := c.api.MemberRemove(ctx, id)
	if err != nil && !isErr(err, rpctypes.ErrGRPCMemberNotFound) {
		return fmt.Errorf("removing etcd member %s: %w", FormatID(id), err)
	}
	return nil
}

// MemberNamed finds the member called name.
func MemberNamed(members []Member, name string) (Member, bool) {
	for _, m := range members {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// isErr tells whether err is etcd's error grpcErr, as the server sent it
// or as the client turned it into an rpctypes.EtcdError: both carry its
// description.
func isErr(err, grpcErr error) bool {
	return err != nil && rpctypes.ErrorDesc(err) == rpctypes.ErrorDesc(grpcErr)
}

// UpdatePeerURLs sets the URLs member id's peers reach it at: a member
// that answered on loopback alone, as a control plane of one does, is told
// its address before a second member joins.
func (c *Client) UpdatePeerURLs(ctx context.Context, id uint64, peerURLs []string) error {
	if _, err := c.api.MemberUpdate(ctx, id, peerURLs); err != nil {
		return fmt.Errorf("updating etcd member %s's peer URLs to %v: %w", FormatID(id), peerURLs, err)
	}
	return nil
}
