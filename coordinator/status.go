package coordinator

import (
	"context"
	"fmt"
	"sort"

	"github.com/unipruning/unipruning/consensus"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/transport"
)

// Status is what `unipruning status` shows.
type Status struct {
	Coordinator string `json:"coordinator"`
	Leader      string `json:"leader"`
	LeaderAddr  string `json:"leader_addr"`
	Job         string `json:"job"`
	State       string `json:"state"`
	Error       string `json:"error,omitempty"`
	// Class is the failure's class when State is failed: invalid_input
	// (fix the job and resubmit), permanent or transient (retry may help:
	// `unipruning retry JOB`).
	Class string `json:"class,omitempty"`
	// Retries counts user retries of a failed job.
	Retries         int           `json:"retries,omitempty"`
	Step            int           `json:"step"`
	Steps           int           `json:"steps"`
	Epoch           uint64        `json:"epoch"`
	LastStepSeconds float64       `json:"last_step_seconds"`
	Shards          []ShardStatus `json:"shards"`
	Rollbacks       int           `json:"rollbacks"`
	// Results are the job's final facts, e.g. gamma_manifest: the blob key
	// of the Γ store's manifest (see `unipruning fetch`).
	Results map[string]string `json:"results,omitempty"`
}

// ShardStatus is one member's line.
type ShardStatus struct {
	ID       string `json:"id"`
	Alive    bool   `json:"alive"`
	Layers   string `json:"layers,omitempty"`
	Standby  bool   `json:"standby,omitempty"`
	Assigned bool   `json:"assigned"`
}

// StatusRequest asks a coordinator replica for its view.
type StatusRequest struct{}

func (n *Node) setInfo(f func(*Status)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f(&n.info)
}

// Snapshot builds this replica's status from the replicated state.
func (n *Node) Snapshot() Status {
	st := n.cfg.Raft.State()
	n.mu.Lock()
	s := n.info
	n.mu.Unlock()
	s.Coordinator = n.cfg.ID
	s.Leader, s.LeaderAddr = n.cfg.Raft.Leader()
	s.State, s.Error, s.Class, s.Epoch, s.Rollbacks, s.Retries = st.Status, st.Error, st.FailClass, st.Assignment.Epoch, st.Rollbacks, st.Retries
	s.Results = st.Results
	if s.Step < st.Step {
		s.Step = st.Step
	}
	if st.Job != nil {
		s.Job = st.Job.ID
		if j, err := job.Parse(st.Job.Spec); err == nil {
			s.Steps = j.Spec.Steps
		}
	}
	s.Shards = nil
	for id, m := range st.Members {
		ss := ShardStatus{ID: id, Alive: n.alive.isAlive(id), Standby: m.Standby}
		if r, ok := st.RangeOf(id); ok {
			ss.Assigned, ss.Layers = true, rangeString(r)
		}
		s.Shards = append(s.Shards, ss)
	}
	sort.Slice(s.Shards, func(i, j int) bool { return s.Shards[i].ID < s.Shards[j].ID })
	return s
}

func rangeString(r consensus.Range) string {
	return fmt.Sprintf("[%d,%d)", r.From, r.To)
}

// serveStatus answers status queries on <prefix>.<job>.status.<replica>
// and, from every replica, on the shared status subject (first answer
// wins; the reply names the leader).
func (n *Node) serveStatus() (func(), error) {
	subj, err := StatusSubject(n.cfg.Subj)
	if err != nil {
		return nil, err
	}
	return transport.HandleJSON(n.cfg.Conn, subj, "", func(ctx context.Context, _ StatusRequest) (Status, error) {
		return n.Snapshot(), nil
	})
}

// StatusSubject is where coordinators answer status queries.
func StatusSubject(s transport.Subjects) (string, error) {
	c, err := s.Coordinator()
	if err != nil {
		return "", err
	}
	return c + ".status", nil
}
