package consensus

import (
	"errors"
	"fmt"
	"sync"
)

// DedupWindow is how many applied command IDs the FSM remembers. A retry is
// recognised only while its first application is within the window; 4096 is
// far more than the commands in flight around any failover.
const DedupWindow = 4096

// snapshotFormat versions the snapshot document independently of commands.
const snapshotFormat = 1

// FSM is the deterministic state machine behind a Node. It is safe for
// concurrent use; Node feeds it committed log entries in order.
type FSM struct {
	mu    sync.RWMutex
	st    State
	seen  map[string]appliedID
	order []string // remembered IDs, oldest first, len ≤ DedupWindow
}

// appliedID is a remembered command: enough to answer a retry with the first
// result and to notice an ID reused for another kind of command.
type appliedID struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Result Result `json:"result"`
}

// snapshotDoc is the JSON document stored in Raft snapshots.
type snapshotDoc struct {
	Format  int         `json:"format"`
	State   State       `json:"state"`
	Applied []appliedID `json:"applied"` // oldest first
}

// NewFSM returns an FSM with an empty state.
func NewFSM() *FSM {
	return &FSM{st: newState(), seen: map[string]appliedID{}}
}

// State returns a deep copy of the current state.
func (f *FSM) State() State {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.Clone()
}

// ApplyCommand applies cmd as the log entry at index. A rejected command
// leaves the state untouched and is not remembered: having had no effect, it
// may be retried and is judged afresh against the state at that time.
func (f *FSM) ApplyCommand(index uint64, cmd Command) (Result, error) {
	if cmd.V != SchemaVersion {
		return Result{}, fmt.Errorf("%w: v=%d, this build understands v=%d", ErrUnsupportedVersion, cmd.V, SchemaVersion)
	}
	if cmd.ID == "" {
		return Result{}, fmt.Errorf("%w: %s: empty command ID", ErrInvalid, cmd.Type)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if prev, ok := f.seen[cmd.ID]; ok {
		if prev.Type != cmd.Type {
			return Result{}, fmt.Errorf("%w: %q was a %s, now a %s", ErrIDReused, cmd.ID, prev.Type, cmd.Type)
		}
		return prev.Result, nil
	}
	if err := f.st.apply(index, cmd); err != nil {
		return Result{}, err
	}
	res := Result{Index: index}
	f.remember(appliedID{ID: cmd.ID, Type: cmd.Type, Result: res})
	return res, nil
}

func (f *FSM) remember(a appliedID) {
	if len(f.order) >= DedupWindow {
		delete(f.seen, f.order[0])
		f.order = f.order[1:]
	}
	f.seen[a.ID] = a
	f.order = append(f.order, a.ID)
}

// MarshalSnapshot encodes the state and the dedup window as JSON.
func (f *FSM) MarshalSnapshot() ([]byte, error) {
	// Encoding under the read lock is the deep copy: Apply cannot change the
	// state until the bytes are complete.
	f.mu.RLock()
	defer f.mu.RUnlock()
	doc := snapshotDoc{Format: snapshotFormat, State: f.st, Applied: make([]appliedID, len(f.order))}
	for i, id := range f.order {
		doc.Applied[i] = f.seen[id]
	}
	return encodeJSON(doc)
}

// RestoreSnapshot replaces the whole state with a MarshalSnapshot document.
func (f *FSM) RestoreSnapshot(data []byte) error {
	var doc snapshotDoc
	if err := decodeStrict(data, &doc); err != nil {
		return fmt.Errorf("consensus: decode snapshot: %w", err)
	}
	if doc.Format != snapshotFormat {
		return fmt.Errorf("consensus: snapshot format %d, this build reads %d", doc.Format, snapshotFormat)
	}
	if len(doc.Applied) > DedupWindow {
		doc.Applied = doc.Applied[len(doc.Applied)-DedupWindow:]
	}
	doc.State.normalize()
	seen := make(map[string]appliedID, len(doc.Applied))
	order := make([]string, 0, len(doc.Applied))
	for _, a := range doc.Applied {
		if _, dup := seen[a.ID]; dup || a.ID == "" {
			return errors.New("consensus: snapshot has an empty or repeated command ID")
		}
		seen[a.ID] = a
		order = append(order, a.ID)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st, f.seen, f.order = doc.State, seen, order
	return nil
}
