package consensus

import (
	"encoding/json"
	"maps"
	"slices"

	"github.com/unipruning/unipruning/job"
)

// Job statuses stored in State.Status.
const (
	StatusNone       = ""
	StatusSubmitted  = "submitted"
	StatusRunning    = "running"
	StatusRecovering = "recovering"
	StatusDone       = "done"
	StatusFailed     = "failed"
)

// JobSpec is the submitted job. Spec is opaque to consensus; it is stored in
// compact JSON form so every replica (and every snapshot) holds the same bytes.
type JobSpec struct {
	ID      string          `json:"id"`
	Version int             `json:"version"`
	Spec    json.RawMessage `json:"spec"`
	// SHA256 is the submitter's hex digest of the spec; when submitted empty,
	// the FSM fills in the digest of the compact Spec bytes.
	SHA256 string `json:"sha256"`
}

// Member is a registered shard process.
type Member struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
	// Registered is the log index of the (latest) registration; a restarted
	// shard re-registers, so a change tells the coordinator it is a new
	// incarnation that has lost its in-memory state.
	Registered uint64 `json:"registered"`
	Standby    bool   `json:"standby"`
}

// Range is one shard's contiguous block of decoder layers [From, To).
type Range struct {
	Shard string `json:"shard"`
	From  int    `json:"from"`
	To    int    `json:"to"`
	Embed bool   `json:"embed"`
	Head  bool   `json:"head"`
}

// Assignment maps layers to shards; Epoch increases with every reassignment
// and fences commands issued under an older one.
type Assignment struct {
	Epoch  uint64  `json:"epoch"`
	Ranges []Range `json:"ranges"`
}

// StepRecord is the replicated record of one search step: its facts, the
// calibration sample it uses and the shards that acknowledged it.
type StepRecord struct {
	job.StepFacts
	Sample int      `json:"sample"`
	Done   []string `json:"done,omitempty"` // shard IDs that acked, sorted
}

// RollbackRecord is one entry of the rollback history.
type RollbackRecord struct {
	FromStep int    `json:"from_step"`
	ToStep   int    `json:"to_step"`
	Epoch    uint64 `json:"epoch"`
	Reason   string `json:"reason"`
}

// State is the replicated state machine's data. Node.State and FSM.State
// return deep copies, so callers may keep and modify them freely.
type State struct {
	Job         *JobSpec                          `json:"job"`
	Members     map[string]Member                 `json:"members"`
	Assignment  Assignment                        `json:"assignment"`
	Step        int                               `json:"step"` // last step begun, 0 = none
	Steps       map[int]StepRecord                `json:"steps"`
	Checkpoints map[int]map[string]job.Checkpoint `json:"checkpoints"`
	RolledBack  []RollbackRecord                  `json:"rolled_back"`         // the newest MaxRollbackHistory
	Rollbacks   int                               `json:"rollbacks,omitempty"` // how many, in all
	Status      string                            `json:"status"`
	Error       string                            `json:"error"`
	// FailClass is the class of the failure that ended the job
	// (invalid_input, permanent or transient), "" unless Status is failed.
	FailClass string `json:"fail_class,omitempty"`
	// Retries counts RetryJob commands (user retries of a failed job).
	Retries int               `json:"retries,omitempty"`
	Results map[string]string `json:"results"`
}

// newState returns an empty state with all maps allocated, so a fresh state
// and one restored from JSON compare equal.
func newState() State {
	var s State
	s.normalize()
	return s
}

// normalize allocates nil maps (a snapshot may encode them as null).
func (s *State) normalize() {
	if s.Members == nil {
		s.Members = map[string]Member{}
	}
	if s.Steps == nil {
		s.Steps = map[int]StepRecord{}
	}
	if s.Checkpoints == nil {
		s.Checkpoints = map[int]map[string]job.Checkpoint{}
	}
	if s.Results == nil {
		s.Results = map[string]string{}
	}
}

// Ended reports whether the job reached a terminal state (done or
// failed): every replica then refuses any change but a retry of a failure.
func (s State) Ended() bool { return s.Status == StatusDone || s.Status == StatusFailed }

// Clone returns a deep copy of s.
func (s State) Clone() State {
	c := s
	if s.Job != nil {
		j := *s.Job
		j.Spec = slices.Clone(s.Job.Spec)
		c.Job = &j
	}
	c.Members = maps.Clone(s.Members)
	c.Assignment.Ranges = slices.Clone(s.Assignment.Ranges)
	if s.Steps != nil {
		c.Steps = make(map[int]StepRecord, len(s.Steps))
		for k, f := range s.Steps {
			c.Steps[k] = f.clone()
		}
	}
	if s.Checkpoints != nil {
		c.Checkpoints = make(map[int]map[string]job.Checkpoint, len(s.Checkpoints))
		for k, m := range s.Checkpoints {
			c.Checkpoints[k] = maps.Clone(m)
		}
	}
	c.RolledBack = slices.Clone(s.RolledBack)
	c.Results = maps.Clone(s.Results)
	return c
}

func (f StepRecord) clone() StepRecord {
	c := f
	c.StepFacts = f.StepFacts.Clone()
	c.Done = slices.Clone(f.Done)
	return c
}

// LatestCommonCheckpoint returns the newest step for which every listed shard
// has a checkpoint manifest: the step all of them can roll back to.
func (s State) LatestCommonCheckpoint(shards []string) (step int, ok bool) {
	if len(shards) == 0 {
		return 0, false
	}
	for _, k := range slices.Backward(slices.Sorted(maps.Keys(s.Checkpoints))) {
		byShard := s.Checkpoints[k]
		all := true
		for _, sh := range shards {
			if _, has := byShard[sh]; !has {
				all = false
				break
			}
		}
		if all {
			return k, true
		}
	}
	return 0, false
}

// AssignedShards returns the shard IDs of the current assignment in layer
// order.
func (s State) AssignedShards() []string {
	out := make([]string, len(s.Assignment.Ranges))
	for i, r := range s.Assignment.Ranges {
		out[i] = r.Shard
	}
	return out
}

// RangeOf returns the range assigned to shard in the current assignment.
func (s State) RangeOf(shard string) (Range, bool) {
	for _, r := range s.Assignment.Ranges {
		if r.Shard == shard {
			return r, true
		}
	}
	return Range{}, false
}

// StepAcked reports whether every shard of the current assignment has acked
// step k.
func (s State) StepAcked(k int) bool {
	f, ok := s.Steps[k]
	if !ok || len(s.Assignment.Ranges) == 0 {
		return false
	}
	for _, r := range s.Assignment.Ranges {
		if _, found := slices.BinarySearch(f.Done, r.Shard); !found {
			return false
		}
	}
	return true
}
