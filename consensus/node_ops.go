package consensus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// leaderPoll is how often WaitLeader looks for a leader.
const leaderPoll = 10 * time.Millisecond

// ID returns the node's Raft server ID.
func (n *Node) ID() string { return n.cfg.NodeID }

// Addr returns the address peers dial (useful with BindAddr port 0).
func (n *Node) Addr() string { return n.layer.Addr().String() }

// State returns a deep copy of this replica's state. On a follower it may
// lag the leader; call Barrier on the leader for a read that reflects every
// committed command.
func (n *Node) State() State { return n.fsm.State() }

// AppliedIndex is the index of the last log entry applied to this replica.
func (n *Node) AppliedIndex() uint64 { return n.raft.AppliedIndex() }

// IsLeader reports whether this node currently believes it is the leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the current leader's ID and address ("" if unknown).
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// LeaderCh returns a channel that receives this node's leadership (true on
// gaining it, false on losing it), starting with the current value. Values
// are coalesced — a slow reader sees the latest, never blocks raft — so act
// on the value received. The channel is closed on Shutdown.
func (n *Node) LeaderCh() <-chan bool {
	ch, _ := n.leader.subscribe()
	return ch
}

// SubscribeLeader is LeaderCh with a cancel func that releases the channel.
func (n *Node) SubscribeLeader() (ch <-chan bool, cancel func()) {
	return n.leader.subscribe()
}

// Apply proposes cmd and waits until it is committed and applied, returning
// the FSM's result or its rejection. Only the leader accepts proposals; a
// follower returns a *NotLeaderError naming the leader.
func (n *Node) Apply(ctx context.Context, cmd Command) (Result, error) {
	if err := checkBounds(cmd); err != nil {
		return Result{}, err // never proposed: the log stays bounded
	}
	data, err := encodeJSON(cmd)
	if err != nil {
		return Result{}, fmt.Errorf("consensus: encode command: %w", err)
	}
	f := n.raft.Apply(data, enqueueTimeout(ctx))
	if err := n.wait(ctx, f); err != nil {
		return Result{}, err
	}
	out, ok := f.Response().(applyOutcome)
	if !ok {
		return Result{}, fmt.Errorf("consensus: unexpected FSM response %T", f.Response())
	}
	return out.res, out.err
}

// Barrier waits until every command committed before it is applied here.
func (n *Node) Barrier(ctx context.Context) error {
	return n.wait(ctx, n.raft.Barrier(enqueueTimeout(ctx)))
}

// AddVoter adds (or, with the same address, confirms) a voting member. It is
// how a new coordinator replica joins: the leader adds it.
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	return n.wait(ctx, n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, enqueueTimeout(ctx)))
}

// RemoveServer removes a member from the Raft configuration.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	return n.wait(ctx, n.raft.RemoveServer(raft.ServerID(id), 0, enqueueTimeout(ctx)))
}

// Servers returns the latest Raft configuration known to this node.
func (n *Node) Servers() ([]Peer, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, n.mapErr(err)
	}
	var out []Peer
	for _, s := range f.Configuration().Servers {
		out = append(out, Peer{ID: string(s.ID), Addr: string(s.Address)})
	}
	return out, nil
}

// Snapshot takes a snapshot now (and compacts the log); having nothing new
// to snapshot is not an error.
func (n *Node) Snapshot() error {
	err := n.raft.Snapshot().Error()
	if errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return nil
	}
	return n.mapErr(err)
}

// WaitLeader blocks until some node is known to be the leader.
func (n *Node) WaitLeader(ctx context.Context) error {
	t := time.NewTicker(leaderPoll)
	defer t.Stop()
	for {
		if id, _ := n.Leader(); id != "" {
			return nil
		}
		if n.raft.State() == raft.Shutdown {
			return ErrShutdown
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// enqueueTimeout bounds how long raft may wait to accept an operation; the
// context bounds the whole wait in Node.wait.
func enqueueTimeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return 0
}

// wait resolves a raft future within ctx. If ctx ends first the operation
// may still complete; command IDs make the retry safe.
func (n *Node) wait(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }() // raft resolves every future, even on shutdown
	select {
	case err := <-done:
		return n.mapErr(err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// mapErr turns raft's errors into this package's.
func (n *Node) mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		id, addr := n.Leader()
		return &NotLeaderError{LeaderID: id, LeaderAddr: addr}
	case errors.Is(err, raft.ErrLeadershipLost):
		return ErrLeadershipLost
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrShutdown
	}
	return fmt.Errorf("consensus: %w", err)
}

// TransferLeadership asks Raft to hand leadership to another voter (an
// error when there is none, e.g. a single-node cluster).
func (n *Node) TransferLeadership() error {
	return n.mapErr(n.raft.LeadershipTransfer().Error())
}
