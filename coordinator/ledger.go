package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/unipruning/unipruning/internal/atomicfile"
	"github.com/unipruning/unipruning/job"
)

// Ledger is the job's source of truth: Raft in a cluster, a JSON file in
// one process. Only small facts go in; tensors stay in the blob store.
type Ledger interface {
	BeginStep(ctx context.Context, k int, lr float64) error
	CommitStep(ctx context.Context, k int, f job.StepFacts) error
	RecordCheckpoint(ctx context.Context, m job.Checkpoint) error
	// CommonCheckpoints lists every step at which all layer ranges have a
	// checkpoint, newest first, with the manifests by range: the newest is
	// where a run resumes, the older ones the fallbacks when it is lost.
	// Ranges, not shard IDs, key checkpoints: a replacement shard restores
	// the checkpoint of the shard whose layers it took over.
	CommonCheckpoints(ranges [][2]int) []CommonCheckpoint
	Rollback(ctx context.Context, toStep int, reason string) error
	Steps() map[int]job.StepFacts
	SetResult(ctx context.Context, key, value string) error
}

// FileLedger keeps the facts in memory and, when Path is set, in a JSON
// file rewritten atomically after every change (the one-process mode's
// stand-in for Raft; --resume reads it).
type FileLedger struct {
	Path  string
	mu    sync.Mutex
	state fileState
}

// ledgerFormat versions the ledger file: 2 stores checkpoint manifests as
// job.Checkpoint (the Raft log's form); format 1 files are refused.
const ledgerFormat = 2

type fileState struct {
	Format      int                               `json:"format"`
	SpecHash    string                            `json:"spec_hash"`
	Step        int                               `json:"step"`
	StepFacts   map[int]job.StepFacts             `json:"steps"`
	Checkpoints map[int]map[string]job.Checkpoint `json:"checkpoints"`
	Results     map[string]string                 `json:"results"`
}

// OpenFileLedger loads path if it exists (for resume) or starts empty. A
// ledger of another job (different spec hash) is refused.
func OpenFileLedger(path, specHash string) (*FileLedger, error) {
	l := &FileLedger{Path: path, state: fileState{Format: ledgerFormat, SpecHash: specHash, StepFacts: map[int]job.StepFacts{},
		Checkpoints: map[int]map[string]job.Checkpoint{}, Results: map[string]string{}}}
	if path == "" {
		return l, nil
	}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return l, nil
	}
	if err != nil {
		return nil, err
	}
	var st fileState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if st.Format != ledgerFormat {
		return nil, fmt.Errorf("%s was written by an older unipruning (ledger format %d, this build reads %d): start the search afresh", path, st.Format, ledgerFormat)
	}
	if st.SpecHash != specHash {
		return nil, fmt.Errorf("%s belongs to a search with different settings (its spec hash is %s, this search's is %s): use a new run directory", path, st.SpecHash, specHash)
	}
	if st.StepFacts == nil {
		st.StepFacts = map[int]job.StepFacts{}
	}
	if st.Checkpoints == nil {
		st.Checkpoints = map[int]map[string]job.Checkpoint{}
	}
	if st.Results == nil {
		st.Results = map[string]string{}
	}
	l.state = st
	return l, nil
}

func (l *FileLedger) save() error {
	if l.Path == "" {
		return nil
	}
	b, err := json.MarshalIndent(l.state, "", " ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Clean(l.Path), b, 0o644)
}

// BeginStep records that step k starts with learning rate lr.
func (l *FileLedger) BeginStep(ctx context.Context, k int, lr float64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k != l.state.Step+1 {
		return fmt.Errorf("ledger: step %d begun after step %d", k, l.state.Step)
	}
	l.state.Step = k
	l.state.StepFacts[k] = job.StepFacts{LR: lr}
	return nil
}

// CommitStep records step k's facts.
func (l *FileLedger) CommitStep(ctx context.Context, k int, f job.StepFacts) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.state.StepFacts[k] = f
	return nil
}

// RecordCheckpoint records a shard checkpoint and persists the ledger.
func (l *FileLedger) RecordCheckpoint(ctx context.Context, m job.Checkpoint) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state.Checkpoints[m.Step] == nil {
		l.state.Checkpoints[m.Step] = map[string]job.Checkpoint{}
	}
	l.state.Checkpoints[m.Step][m.Shard] = m
	return l.save()
}

// LatestCommon is the newest of CommonCheckpoints: its step and manifests
// by range (0 and nil when there is none).
func (l *FileLedger) LatestCommon(ranges [][2]int) (int, map[[2]int]job.Checkpoint) {
	if c := l.CommonCheckpoints(ranges); len(c) > 0 {
		return c[0].Step, c[0].ByRange
	}
	return 0, nil
}

// CommonCheckpoints lists the steps checkpointed for every range.
func (l *FileLedger) CommonCheckpoints(ranges [][2]int) []CommonCheckpoint {
	l.mu.Lock()
	defer l.mu.Unlock()
	return commonCheckpoints(l.state.Checkpoints, ranges)
}

// CommonCheckpoint is a step every range checkpointed, with the manifests
// by range.
type CommonCheckpoint struct {
	Step    int
	ByRange map[[2]int]job.Checkpoint
}

// commonCheckpoints lists, over step → shard → manifest, the steps at
// which every range has a manifest, newest first.
func commonCheckpoints(cps map[int]map[string]job.Checkpoint, ranges [][2]int) []CommonCheckpoint {
	var out []CommonCheckpoint
	for step, ms := range cps {
		byRange := map[[2]int]job.Checkpoint{}
		for _, m := range ms {
			byRange[m.Layers] = m
		}
		all := true
		for _, r := range ranges {
			if _, ok := byRange[r]; !ok {
				all = false
			}
		}
		if all && step > 0 {
			out = append(out, CommonCheckpoint{Step: step, ByRange: byRange})
		}
	}
	slices.SortFunc(out, func(a, b CommonCheckpoint) int { return b.Step - a.Step })
	return out
}

// Rollback forgets steps after toStep.
func (l *FileLedger) Rollback(ctx context.Context, toStep int, reason string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.state.StepFacts {
		if k > toStep {
			delete(l.state.StepFacts, k)
		}
	}
	for k := range l.state.Checkpoints {
		if k > toStep {
			delete(l.state.Checkpoints, k)
		}
	}
	l.state.Step = toStep
	return l.save()
}

// Steps returns a copy of the per-step facts.
func (l *FileLedger) Steps() map[int]job.StepFacts {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[int]job.StepFacts, len(l.state.StepFacts))
	for k, v := range l.state.StepFacts {
		out[k] = v
	}
	return out
}

// SetResult records a final fact and persists.
func (l *FileLedger) SetResult(ctx context.Context, key, value string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.state.Results[key] = value
	return l.save()
}
