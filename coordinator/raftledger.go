package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/unipruning/unipruning/consensus"
	"github.com/unipruning/unipruning/job"
)

// RaftLedger records the job's facts through Raft under one assignment
// epoch: a leader that lost its epoch (a newer assignment exists) gets
// ErrStaleEpoch on every write, which stops its step loop — the fencing of
// DESIGN §3.5. Command IDs are derived from (epoch, step, kind), so a write
// retried after a leader change is applied once.
type RaftLedger struct {
	Node  *consensus.Node
	Epoch uint64
}

// NewRaftLedger writes through node under epoch.
func NewRaftLedger(node *consensus.Node, epoch uint64) *RaftLedger {
	return &RaftLedger{Node: node, Epoch: epoch}
}

func (l *RaftLedger) apply(ctx context.Context, cmd consensus.Command, err error) error {
	if err != nil {
		return err
	}
	_, err = l.Node.Apply(ctx, cmd)
	return err
}

// BeginStep commits that step k starts with learning rate lr.
func (l *RaftLedger) BeginStep(ctx context.Context, k int, lr float64) error {
	cmd, err := consensus.NewBeginStep(fmt.Sprintf("begin/e%d/k%d", l.Epoch, k), l.Epoch, k, lr, k-1)
	return l.apply(ctx, cmd, err)
}

// CommitStep commits step k's loss, gradient norm and threshold. The
// commands are independent, so they are submitted together rather than
// one commit after another (hashicorp/raft batches Applies that arrive
// together into one log write).
func (l *RaftLedger) CommitStep(ctx context.Context, k int, f job.StepFacts) error {
	var cmds []consensus.Command
	add := func(cmd consensus.Command, err error) error {
		cmds = append(cmds, cmd)
		return err
	}
	if f.Loss != nil {
		if err := add(consensus.NewCommitLoss(fmt.Sprintf("loss/e%d/k%d", l.Epoch, k), l.Epoch, k, *f.Loss)); err != nil {
			return err
		}
	}
	if f.GradNorm != nil {
		if err := add(consensus.NewCommitGradNorm(fmt.Sprintf("norm/e%d/k%d", l.Epoch, k), l.Epoch, k, *f.GradNorm)); err != nil {
			return err
		}
	}
	if f.Tau != nil {
		if err := add(consensus.NewCommitTau(fmt.Sprintf("tau/e%d/k%d", l.Epoch, k), l.Epoch, k, *f.Tau)); err != nil {
			return err
		}
	}
	errs := make([]error, len(cmds))
	var wg sync.WaitGroup
	for i, cmd := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = l.Node.Apply(ctx, cmd)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// RecordCheckpoint commits a shard's checkpoint manifest.
func (l *RaftLedger) RecordCheckpoint(ctx context.Context, m job.Checkpoint) error {
	cmd, err := consensus.NewRecordCheckpoint(fmt.Sprintf("ckpt/e%d/k%d/%s", l.Epoch, m.Step, m.Shard), l.Epoch, m)
	return l.apply(ctx, cmd, err)
}

// CommonCheckpoints lists the steps checkpointed for every range.
func (l *RaftLedger) CommonCheckpoints(ranges [][2]int) []CommonCheckpoint {
	return commonCheckpoints(l.Node.State().Checkpoints, ranges)
}

// Rollback commits the roll-back of the job to toStep.
func (l *RaftLedger) Rollback(ctx context.Context, toStep int, reason string) error {
	cmd, err := consensus.NewRollback(fmt.Sprintf("rollback/e%d/k%d", l.Epoch, toStep), l.Epoch, toStep, reason)
	return l.apply(ctx, cmd, err)
}

// Steps returns the committed per-step facts.
func (l *RaftLedger) Steps() map[int]job.StepFacts {
	st := l.Node.State()
	out := make(map[int]job.StepFacts, len(st.Steps))
	for k, r := range st.Steps {
		out[k] = r.StepFacts
	}
	return out
}

// SetResult commits a final fact.
func (l *RaftLedger) SetResult(ctx context.Context, key, value string) error {
	cmd, err := consensus.NewSetResult(fmt.Sprintf("result/%s", key), key, value)
	return l.apply(ctx, cmd, err)
}
