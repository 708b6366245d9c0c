package consensus

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/unipruning/unipruning/job"
)

// SchemaVersion is the command envelope version this build understands. A
// replica that meets a newer version refuses the entry instead of guessing.
const SchemaVersion = 1

// Command types.
const (
	TypeSubmitJob        = "SubmitJob"
	TypeRegisterMember   = "RegisterMember"
	TypeRemoveMember     = "RemoveMember"
	TypeAssign           = "Assign"
	TypeBeginStep        = "BeginStep"
	TypeCommitGradNorm   = "CommitGradNorm"
	TypeCommitTau        = "CommitTau"
	TypeCommitLoss       = "CommitLoss"
	TypeAckStep          = "AckStep"
	TypeRecordCheckpoint = "RecordCheckpoint"
	TypeRollback         = "Rollback"
	TypeSetStatus        = "SetStatus"
	TypeSetResult        = "SetResult"
	TypeRetryJob         = "RetryJob"
)

// fencedTypes act for an assignment and must carry its epoch; the others may
// carry 0 ("no epoch"), in which case they are not fenced.
var fencedTypes = map[string]bool{
	TypeAssign: true, TypeBeginStep: true, TypeCommitGradNorm: true,
	TypeCommitTau: true, TypeCommitLoss: true, TypeAckStep: true, TypeRecordCheckpoint: true,
	TypeRollback: true,
}

// Errors returned by Apply. Validation errors wrap ErrInvalid.
var (
	ErrNotLeader          = errors.New("consensus: not the leader")
	ErrStaleEpoch         = errors.New("consensus: stale epoch")
	ErrInvalid            = errors.New("consensus: invalid command")
	ErrConflict           = errors.New("consensus: conflicts with a committed fact")
	ErrUnsupportedVersion = errors.New("consensus: unsupported command schema version")
	ErrUnknownType        = errors.New("consensus: unknown command type")
	ErrIDReused           = errors.New("consensus: command ID already used by a different command type")
	// ErrLeadershipLost means the leader stepped down before the command's
	// fate was known: it may or may not be committed. Retry with the same ID.
	ErrLeadershipLost = errors.New("consensus: leadership lost before the outcome was known; retry with the same command ID")
	ErrShutdown       = errors.New("consensus: node is shut down")
	// ErrTerminal: the job ended (done or failed) and the command would
	// change it; only a RetryJob reopens a failed job.
	ErrTerminal = errors.New("consensus: the job has ended")
)

// NotLeaderError is returned when a leader-only operation reaches a follower.
// It matches ErrNotLeader with errors.Is and names the leader, if known, so
// the caller can forward the request.
type NotLeaderError struct {
	LeaderID   string
	LeaderAddr string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "consensus: not the leader (leader unknown)"
	}
	return fmt.Sprintf("consensus: not the leader (leader is %s at %s)", e.LeaderID, e.LeaderAddr)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// Command is the envelope of every replicated change.
type Command struct {
	V       int             `json:"v"`     // SchemaVersion
	ID      string          `json:"id"`    // unique; a re-applied ID is a no-op
	Type    string          `json:"type"`  // one of the Type* constants
	Epoch   uint64          `json:"epoch"` // assignment epoch it was issued under, 0 = none
	Payload json.RawMessage `json:"payload"`
}

// Result is what an applied command returns. A duplicate returns the result
// of the first application, so a retry cannot tell it was retried.
type Result struct {
	Index uint64 `json:"index"` // log index at which the command took effect
}

// Payload is implemented by every command payload type.
type Payload interface{ CommandType() string }

// Payload types, one per command type.
type (
	SubmitJob struct {
		Job JobSpec `json:"job"`
	}
	RegisterMember struct {
		ID      string `json:"id"`
		Addr    string `json:"addr"`
		Standby bool   `json:"standby"`
	}
	RemoveMember struct {
		ID string `json:"id"`
	}
	Assign struct {
		Assignment Assignment `json:"assignment"`
	}
	BeginStep struct {
		Step   int     `json:"step"`
		LR     float64 `json:"lr"`
		Sample int     `json:"sample"`
	}
	CommitGradNorm struct {
		Step int     `json:"step"`
		Norm float64 `json:"norm"`
	}
	CommitTau struct {
		Step int     `json:"step"`
		Tau  float64 `json:"tau"`
	}
	CommitLoss struct {
		Step int     `json:"step"`
		Loss float64 `json:"loss"`
	}
	AckStep struct {
		Step  int    `json:"step"`
		Shard string `json:"shard"`
	}
	RecordCheckpoint struct {
		Manifest job.Checkpoint `json:"manifest"`
	}
	Rollback struct {
		ToStep int    `json:"to_step"`
		Epoch  uint64 `json:"epoch"`
		Reason string `json:"reason"`
	}
	SetStatus struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		// Class is the failure's class (invalid_input, permanent,
		// transient) when Status is failed.
		Class string `json:"class,omitempty"`
	}
	// RetryJob reopens a failed job (the user's `unipruning retry`): the
	// leader resumes it from the newest intact checkpoint.
	RetryJob struct {
		JobID  string `json:"job_id"`
		Reason string `json:"reason,omitempty"`
	}
	SetResult struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
)

func (SubmitJob) CommandType() string        { return TypeSubmitJob }
func (RegisterMember) CommandType() string   { return TypeRegisterMember }
func (RemoveMember) CommandType() string     { return TypeRemoveMember }
func (Assign) CommandType() string           { return TypeAssign }
func (BeginStep) CommandType() string        { return TypeBeginStep }
func (CommitGradNorm) CommandType() string   { return TypeCommitGradNorm }
func (CommitTau) CommandType() string        { return TypeCommitTau }
func (CommitLoss) CommandType() string       { return TypeCommitLoss }
func (AckStep) CommandType() string          { return TypeAckStep }
func (RecordCheckpoint) CommandType() string { return TypeRecordCheckpoint }
func (Rollback) CommandType() string         { return TypeRollback }
func (SetStatus) CommandType() string        { return TypeSetStatus }
func (SetResult) CommandType() string        { return TypeSetResult }
func (RetryJob) CommandType() string         { return TypeRetryJob }

// NewID returns a random command ID. Callers that may retry must keep the ID
// of the first attempt.
func NewID() string { return rand.Text() }

// NewCommand wraps a payload in an envelope. It fails only when the payload
// cannot be encoded (NaN or ±Inf floats, invalid raw JSON).
func NewCommand(id string, epoch uint64, p Payload) (Command, error) {
	raw, err := encodeJSON(p)
	if err != nil {
		return Command{}, fmt.Errorf("consensus: encode %s payload: %w", p.CommandType(), err)
	}
	return Command{V: SchemaVersion, ID: id, Type: p.CommandType(), Epoch: epoch, Payload: raw}, nil
}

// NewSubmitJob submits (or replaces, with a higher Version) the job.
func NewSubmitJob(id string, job JobSpec) (Command, error) {
	return NewCommand(id, 0, SubmitJob{Job: job})
}

// NewRegisterMember registers or re-registers a shard.
func NewRegisterMember(id, shard, addr string, standby bool) (Command, error) {
	return NewCommand(id, 0, RegisterMember{ID: shard, Addr: addr, Standby: standby})
}

// NewRemoveMember removes a shard that holds no layers.
func NewRemoveMember(id, shard string) (Command, error) {
	return NewCommand(id, 0, RemoveMember{ID: shard})
}

// NewAssign installs a new assignment; the envelope carries its new epoch.
func NewAssign(id string, a Assignment) (Command, error) {
	return NewCommand(id, a.Epoch, Assign{Assignment: a})
}

// NewBeginStep begins step k (which must follow the last one begun).
func NewBeginStep(id string, epoch uint64, step int, lr float64, sample int) (Command, error) {
	return NewCommand(id, epoch, BeginStep{Step: step, LR: lr, Sample: sample})
}

// NewCommitGradNorm records the global gradient norm of a step.
func NewCommitGradNorm(id string, epoch uint64, step int, norm float64) (Command, error) {
	return NewCommand(id, epoch, CommitGradNorm{Step: step, Norm: norm})
}

// NewCommitLoss records the mean loss of a step's window (reported in the
// Γ store; not needed for recovery).
func NewCommitLoss(id string, epoch uint64, step int, loss float64) (Command, error) {
	return NewCommand(id, epoch, CommitLoss{Step: step, Loss: loss})
}

// NewCommitTau records the threshold τ of a step.
func NewCommitTau(id string, epoch uint64, step int, tau float64) (Command, error) {
	return NewCommand(id, epoch, CommitTau{Step: step, Tau: tau})
}

// NewAckStep records that a shard finished a step.
func NewAckStep(id string, epoch uint64, step int, shard string) (Command, error) {
	return NewCommand(id, epoch, AckStep{Step: step, Shard: shard})
}

// NewRecordCheckpoint records a shard's checkpoint manifest.
func NewRecordCheckpoint(id string, epoch uint64, m job.Checkpoint) (Command, error) {
	return NewCommand(id, epoch, RecordCheckpoint{Manifest: m})
}

// NewRollback rolls the job back to toStep under the given (current) epoch.
func NewRollback(id string, epoch uint64, toStep int, reason string) (Command, error) {
	return NewCommand(id, epoch, Rollback{ToStep: toStep, Epoch: epoch, Reason: reason})
}

// NewSetStatus sets the job status (and error text, for failures).
func NewSetStatus(id, status, errText string) (Command, error) {
	return NewCommand(id, 0, SetStatus{Status: status, Error: truncate(errText)})
}

// NewFailed marks the job failed with the reason and its class.
func NewFailed(id, errText, class string) (Command, error) {
	return NewCommand(id, 0, SetStatus{Status: StatusFailed, Error: truncate(errText), Class: class})
}

// NewRetryJob reopens the failed job jobID.
func NewRetryJob(id, jobID, reason string) (Command, error) {
	return NewCommand(id, 0, RetryJob{JobID: jobID, Reason: truncate(reason)})
}

// NewSetResult stores a small final fact under key.
func NewSetResult(id, key, value string) (Command, error) {
	return NewCommand(id, 0, SetResult{Key: key, Value: value})
}

// encodeJSON marshals without HTML escaping, so raw JSON (the job spec) keeps
// the same bytes through the log, the FSM and snapshots.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// decodeStrict decodes exactly one JSON value and rejects unknown fields:
// the schema version, not leniency, is how the format evolves.
func decodeStrict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after JSON value")
	}
	return nil
}
