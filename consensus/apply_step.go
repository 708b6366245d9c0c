package consensus

import (
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/unipruning/unipruning/job"
)

func (s *State) beginStep(p BeginStep) error {
	switch {
	case s.Job == nil:
		return invalid(TypeBeginStep, "no job submitted")
	case s.Assignment.Epoch == 0:
		return invalid(TypeBeginStep, "no assignment")
	case p.Step != s.Step+1:
		return invalid(TypeBeginStep, "step %d does not follow step %d", p.Step, s.Step)
	case !finiteNonNeg(p.LR):
		return invalid(TypeBeginStep, "learning rate %v", p.LR)
	case p.Sample < 0:
		return invalid(TypeBeginStep, "sample %d", p.Sample)
	}
	s.Steps[p.Step] = StepRecord{StepFacts: job.StepFacts{LR: p.LR}, Sample: p.Sample}
	s.Step = p.Step
	return nil
}

// begun returns the facts of step k, which must have begun (and not been
// rolled back).
func (s *State) begun(typ string, k int) (StepRecord, error) {
	f, ok := s.Steps[k]
	if !ok {
		return f, invalid(typ, "step %d has not begun (last begun: %d)", k, s.Step)
	}
	return f, nil
}

func (s *State) commitGradNorm(p CommitGradNorm) error {
	return s.commitScalar(TypeCommitGradNorm, p.Step, p.Norm, func(f *StepRecord) **float64 { return &f.GradNorm })
}

func (s *State) commitLoss(p CommitLoss) error {
	return s.commitScalar(TypeCommitLoss, p.Step, p.Loss, func(f *StepRecord) **float64 { return &f.Loss })
}

func (s *State) commitTau(p CommitTau) error {
	return s.commitScalar(TypeCommitTau, p.Step, p.Tau, func(f *StepRecord) **float64 { return &f.Tau })
}

// commitScalar records one of a begun step's replicated scalars, the one
// slot picks.
func (s *State) commitScalar(typ string, k int, v float64, slot func(*StepRecord) **float64) error {
	f, err := s.begun(typ, k)
	if err != nil {
		return err
	}
	if err := commitOnce(typ, slot(&f), v); err != nil {
		return err
	}
	s.Steps[k] = f
	return nil
}

// commitOnce sets *slot to v unless it already holds a value. Re-committing
// the same value is harmless; a different one means two leaders computed
// different reductions, which determinism forbids, so it is an error.
func commitOnce(typ string, slot **float64, v float64) error {
	if !finiteNonNeg(v) {
		return invalid(typ, "value %v must be finite and ≥ 0", v)
	}
	if *slot != nil {
		if **slot == v {
			return nil
		}
		return fmt.Errorf("%w: %s: already committed %v, now %v", ErrConflict, typ, **slot, v)
	}
	*slot = &v
	return nil
}

func finiteNonNeg(v float64) bool { return v >= 0 && !math.IsInf(v, 1) }

func (s *State) ackStep(p AckStep) error {
	f, err := s.begun(TypeAckStep, p.Step)
	if err != nil {
		return err
	}
	if _, ok := s.RangeOf(p.Shard); !ok {
		return invalid(TypeAckStep, "shard %q is not in assignment epoch %d", p.Shard, s.Assignment.Epoch)
	}
	i, found := slices.BinarySearch(f.Done, p.Shard)
	if found {
		return nil
	}
	f.Done = slices.Insert(slices.Clone(f.Done), i, p.Shard)
	s.Steps[p.Step] = f
	return nil
}

func (s *State) recordCheckpoint(p RecordCheckpoint) error {
	m := p.Manifest
	if err := s.validateManifest(m); err != nil {
		return err
	}
	byShard := s.Checkpoints[m.Step]
	if prev, ok := byShard[m.Shard]; ok {
		if prev == m {
			return nil
		}
		return fmt.Errorf("%w: %s: shard %q already has a different checkpoint at step %d", ErrConflict, TypeRecordCheckpoint, m.Shard, m.Step)
	}
	if byShard == nil {
		byShard = map[string]job.Checkpoint{}
		s.Checkpoints[m.Step] = byShard
	}
	byShard[m.Shard] = m
	return nil
}

// validateManifest checks a manifest against the current assignment: the
// shard must own exactly the layers it claims to have saved.
func (s *State) validateManifest(m job.Checkpoint) error {
	const typ = TypeRecordCheckpoint
	if m.Step < 1 || m.Step > s.Step {
		return invalid(typ, "step %d outside [1,%d]", m.Step, s.Step)
	}
	r, ok := s.RangeOf(m.Shard)
	if !ok {
		return invalid(typ, "shard %q is not in assignment epoch %d", m.Shard, s.Assignment.Epoch)
	}
	if m.Layers != [2]int{r.From, r.To} {
		return invalid(typ, "shard %q saved layers %v but owns [%d %d]", m.Shard, m.Layers, r.From, r.To)
	}
	if m.Key == "" || !isHexSHA256(m.SHA256) || m.Bytes < 0 {
		return invalid(typ, "manifest needs a key, a hex sha256 and a size ≥ 0")
	}
	return nil
}

func (s *State) rollback(epoch uint64, p Rollback) error {
	const typ = TypeRollback
	switch {
	case p.Epoch != epoch:
		return invalid(typ, "payload epoch %d differs from envelope epoch %d", p.Epoch, epoch)
	case p.Epoch != s.Assignment.Epoch:
		// Older epochs were rejected as stale already; a newer one would
		// name an assignment that does not exist yet.
		return invalid(typ, "epoch %d is not the current epoch %d", p.Epoch, s.Assignment.Epoch)
	case p.ToStep < 0 || p.ToStep > s.Step:
		return invalid(typ, "target step %d outside [0,%d]", p.ToStep, s.Step)
	case p.ToStep > 0 && len(s.Checkpoints[p.ToStep]) == 0:
		return invalid(typ, "no checkpoint at step %d", p.ToStep)
	}
	maps.DeleteFunc(s.Steps, func(k int, _ StepRecord) bool { return k > p.ToStep })
	maps.DeleteFunc(s.Checkpoints, func(k int, _ map[string]job.Checkpoint) bool { return k > p.ToStep })
	s.RolledBack = append(s.RolledBack, RollbackRecord{FromStep: s.Step, ToStep: p.ToStep, Epoch: p.Epoch, Reason: p.Reason})
	if n := len(s.RolledBack); n > MaxRollbackHistory {
		s.RolledBack = slices.Clone(s.RolledBack[n-MaxRollbackHistory:])
	}
	s.Rollbacks++
	s.Step = p.ToStep
	return nil
}
