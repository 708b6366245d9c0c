package consensus

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// applyOutcome is what raftFSM.Apply hands back through raft's future.
type applyOutcome struct {
	res Result
	err error
}

// raftFSM adapts FSM to raft.FSM, keeping raft's types out of FSM's API.
type raftFSM struct{ f *FSM }

var _ raft.FSM = raftFSM{}

// Apply decodes a committed entry. A malformed entry is rejected like an
// invalid command, identically on every replica, rather than crashing them.
func (r raftFSM) Apply(l *raft.Log) any {
	var cmd Command
	if err := json.Unmarshal(l.Data, &cmd); err != nil {
		return applyOutcome{err: fmt.Errorf("%w: undecodable log entry %d: %v", ErrInvalid, l.Index, err)}
	}
	res, err := r.f.ApplyCommand(l.Index, cmd)
	return applyOutcome{res: res, err: err}
}

// Snapshot encodes the state at once (it is small), so Persist may run
// concurrently with later Applies without sharing any memory.
func (r raftFSM) Snapshot() (raft.FSMSnapshot, error) {
	data, err := r.f.MarshalSnapshot()
	if err != nil {
		return nil, err
	}
	return fsmSnapshot(data), nil
}

func (r raftFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("consensus: read snapshot: %w", err)
	}
	return r.f.RestoreSnapshot(data)
}

type fsmSnapshot []byte

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return fmt.Errorf("consensus: write snapshot: %w", err)
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() {}
