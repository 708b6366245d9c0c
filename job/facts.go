package job

// StepFacts are the small scalars of one search step that the leader
// commits (Raft in a cluster, the run's ledger file in one process) and
// that the Γ store reports. Loss, GradNorm and Tau are nil until known
// (GradNorm and Tau also stay nil in the modes that have none).
type StepFacts struct {
	LR       float64  `json:"lr"`
	Loss     *float64 `json:"loss,omitempty"`
	GradNorm *float64 `json:"grad_norm,omitempty"`
	Tau      *float64 `json:"tau,omitempty"`
}

// Clone returns a copy that shares no pointers with f.
func (f StepFacts) Clone() StepFacts {
	c := f
	c.Loss, c.GradNorm, c.Tau = clonePtr(f.Loss), clonePtr(f.GradNorm), clonePtr(f.Tau)
	return c
}

func clonePtr(p *float64) *float64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// Checkpoint is the manifest of one shard's checkpoint of one step: the
// image lives in the blob store under Ref. Checkpoints are found by layer
// range, not by shard: a replacement shard restores the checkpoint of the
// shard whose layers it took over.
type Checkpoint struct {
	Step   int    `json:"step"`
	Shard  string `json:"shard"`
	Layers [2]int `json:"layers"` // [From, To)
	Ref
}
