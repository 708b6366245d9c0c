package consensus

import (
	"encoding/json"
	"fmt"
)

// Bounds on everything that reaches the Raft log (issue 12 class 6): a
// client that may submit commands cannot grow the log or the state beyond
// them, one command at a time or by many registrations.
const (
	// MaxCommandBytes bounds one encoded command (envelope and payload).
	MaxCommandBytes = 96 << 10
	// MaxSpecBytes bounds a submitted job spec (compact JSON).
	MaxSpecBytes = 64 << 10
	// MaxIDBytes bounds command, job, member and shard IDs.
	MaxIDBytes = 128
	// MaxAddrBytes bounds a member's address.
	MaxAddrBytes = 256
	// MaxKeyBytes bounds blob keys and result keys.
	MaxKeyBytes = 256
	// MaxTextBytes bounds free text: status errors, rollback reasons,
	// result values.
	MaxTextBytes = 4 << 10
	// MaxMembers bounds the distinct shard registrations of a cluster's
	// job; re-registering a known ID replaces its entry.
	MaxMembers = 256
	// MaxResults bounds the result facts of a job.
	MaxResults = 64
	// MaxRollbackHistory is how many rollback records State keeps (the
	// count of all of them is kept apart).
	MaxRollbackHistory = 64
)

// checkBounds rejects a command whose size or fields exceed the bounds. It
// depends on the command alone, so Node.Apply runs it before proposing
// (nothing oversize enters the log) and the FSM runs it again on every
// entry (entries proposed by another build).
func checkBounds(cmd Command) error {
	if n := len(cmd.ID); n > MaxIDBytes {
		return fmt.Errorf("%w: %s: command ID of %d bytes (at most %d)", ErrInvalid, cmd.Type, n, MaxIDBytes)
	}
	if n := len(cmd.Payload) + len(cmd.ID) + len(cmd.Type); n > MaxCommandBytes {
		return fmt.Errorf("%w: %s: command of %d bytes (at most %d)", ErrInvalid, cmd.Type, n, MaxCommandBytes)
	}
	var fields []boundedField
	switch cmd.Type {
	case TypeSubmitJob:
		var p SubmitJob
		if json.Unmarshal(cmd.Payload, &p) == nil {
			fields = []boundedField{{"job ID", p.Job.ID, MaxIDBytes}, {"spec", string(p.Job.Spec), MaxSpecBytes}, {"sha256", p.Job.SHA256, 64}}
		}
	case TypeRegisterMember:
		var p RegisterMember
		if json.Unmarshal(cmd.Payload, &p) == nil {
			fields = []boundedField{{"member ID", p.ID, MaxIDBytes}, {"address", p.Addr, MaxAddrBytes}}
		}
	case TypeRemoveMember:
		var p RemoveMember
		if json.Unmarshal(cmd.Payload, &p) == nil {
			fields = []boundedField{{"member ID", p.ID, MaxIDBytes}}
		}
	case TypeAssign:
		var p Assign
		if json.Unmarshal(cmd.Payload, &p) == nil {
			if len(p.Assignment.Ranges) > MaxMembers {
				return fmt.Errorf("%w: %s: %d ranges (at most %d)", ErrInvalid, cmd.Type, len(p.Assignment.Ranges), MaxMembers)
			}
			for _, r := range p.Assignment.Ranges {
				fields = append(fields, boundedField{"shard ID", r.Shard, MaxIDBytes})
			}
		}
	case TypeAckStep:
		var p AckStep
		if json.Unmarshal(cmd.Payload, &p) == nil {
			fields = []boundedField{{"shard ID", p.Shard, MaxIDBytes}}
		}
	case TypeRecordCheckpoint:
		var p RecordCheckpoint
		if json.Unmarshal(cmd.Payload, &p) == nil {
			m := p.Manifest
			fields = []boundedField{{"shard ID", m.Shard, MaxIDBytes}, {"key", m.Key, MaxKeyBytes}, {"sha256", m.SHA256, 64}}
		}
	case TypeRollback:
		var p Rollback
		if json.Unmarshal(cmd.Payload, &p) == nil {
			fields = []boundedField{{"reason", p.Reason, MaxTextBytes}}
		}
	case TypeSetStatus:
		var p SetStatus
		if json.Unmarshal(cmd.Payload, &p) == nil {
			fields = []boundedField{{"error", p.Error, MaxTextBytes}, {"class", p.Class, MaxIDBytes}}
		}
	case TypeSetResult:
		var p SetResult
		if json.Unmarshal(cmd.Payload, &p) == nil {
			fields = []boundedField{{"key", p.Key, MaxKeyBytes}, {"value", p.Value, MaxTextBytes}}
		}
	case TypeRetryJob:
		var p RetryJob
		if json.Unmarshal(cmd.Payload, &p) == nil {
			fields = []boundedField{{"job ID", p.JobID, MaxIDBytes}, {"reason", p.Reason, MaxTextBytes}}
		}
	}
	for _, f := range fields {
		if len(f.value) > f.max {
			return fmt.Errorf("%w: %s: %s of %d bytes (at most %d)", ErrInvalid, cmd.Type, f.name, len(f.value), f.max)
		}
	}
	return nil
}

type boundedField struct {
	name, value string
	max         int
}

// truncate shortens free text to at most MaxTextBytes (on a rune
// boundary): the constructors of commands that record an error or a
// reason of unknown length apply it.
func truncate(s string) string {
	if len(s) <= MaxTextBytes {
		return s
	}
	const tail = " …(truncated)"
	cut := MaxTextBytes - len(tail)
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + tail
}
