package shardrpc

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"unsafe"

	"github.com/klauspost/compress/zstd"

	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/prune"
	"github.com/unipruning/unipruning/transport"
)

// Control protocol between the coordinator (Remote) and a shard (Server).
//
// Subject: one per shard, transport.Subjects.Control(id) = P.J.ctl.<id>,
// request-reply through transport.Call/Handle (so handler errors come back
// as *transport.RemoteError with a Code, and timeouts are retried with the
// same transport request ID).
//
// Request: the JSON Envelope {"method", "id", "epoch", "body"}; body is the
// method's request struct below (JSON). Reply: the method's reply struct as
// JSON, except "histogram", whose reply is binary (see EncodeHistogram).
//
//	method       body                        reply              lock  dedupe
//	ping         -                           {}                 no    -
//	status       -                           Status             no    -
//	cancel       CancelRequest               {}                 no    -
//	assign       AssignRequest               CountReply         yes   id
//	count        -                           CountReply         yes   -
//	step         StepRequest                 StepReply          yes   id, (epoch,k)
//	update       UpdateRequest               {}                 yes   id, (epoch,k)
//	histogram    HistogramRequest            binary histogram   yes   -
//	count_equal  CountEqualRequest           CountReply         yes   -
//	apply_tau    ApplyTauRequest             {}                 yes   id, (epoch,k)
//	checkpoint   -                           Ref                yes   -
//	restore      RestoreRequest              {}                 yes   id
//	gamma        -                           Ref                yes   -
//
// "lock": the call runs under the shard's operation lock, one at a time.
// Every locked call is fenced by its epoch: lower than the shard's current
// epoch → error code stale_epoch; higher → epoch_ahead (only assign moves
// a shard to a new epoch). "dedupe": see Server for the exact rules that
// make retried calls harmless.
const (
	MethodPing       = "ping"
	MethodStatus     = "status"
	MethodCancel     = "cancel"
	MethodAssign     = "assign"
	MethodCount      = "count"
	MethodStep       = "step"
	MethodUpdate     = "update"
	MethodHistogram  = "histogram"
	MethodCountEqual = "count_equal"
	MethodApplyTau   = "apply_tau"
	MethodCheckpoint = "checkpoint"
	MethodRestore    = "restore"
	MethodGamma      = "gamma"
)

// Error codes of the control protocol (transport.RemoteError.Code).
const (
	CodeStaleEpoch    = "stale_epoch"    // the call's epoch is older than the shard's: fenced
	CodeEpochAhead    = "epoch_ahead"    // the call's epoch is newer: assign the shard first
	CodeNotAssigned   = "not_assigned"   // no part loaded yet
	CodeChecksum      = "checksum"       // a stored image does not match its checksum
	CodeConflict      = "conflict"       // same (epoch, step) as a completed call, other arguments
	CodeUnknownMethod = "unknown_method" // method not served by this shard
	CodeImageMissing  = "image_missing"  // a checkpoint image is not in the blob store
	CodeInvalidInput  = "invalid_input"  // the job's input cannot be loaded (file, format, seqlen)
)

// ErrStaleEpoch is wrapped by Remote's errors for calls a shard fenced off
// (code stale_epoch): the caller is a deposed leader or lags an epoch bump.
var ErrStaleEpoch = errors.New("shard: call fenced off (stale epoch)")

// Envelope is one control request.
type Envelope struct {
	Method string `json:"method"`
	// ID identifies the logical call: every transport retry carries the
	// same ID, and the server answers a repeated ID from its record instead
	// of running the call again. Empty: the transport request ID is used.
	ID    string          `json:"id,omitempty"`
	Epoch uint64          `json:"epoch"`
	Body  json.RawMessage `json:"body,omitempty"`
}

// AssignRequest gives a shard its part of a job: stage index among stages
// (stage 0 embeds, the last computes the loss) fixes its pipe neighbours.
type AssignRequest struct {
	Spec   job.Spec `json:"spec"`
	Part   nn.Part  `json:"part"`
	Stage  int      `json:"stage"`
	Stages int      `json:"stages"`
}

// CountReply carries a count of target weights.
type CountReply struct {
	Count uint64 `json:"count"`
}

// StepRequest runs step K's forward/backward.
type StepRequest struct {
	K int `json:"k"`
}

// StepReply is StepResult with floats that survive JSON exactly (NaN and
// ±Inf included).
type StepReply struct {
	Step      int         `json:"step"`
	Loss      WireFloat   `json:"loss"`
	Count     int         `json:"count"`
	GradSumSq []WireFloat `json:"grad_sumsq,omitempty"`
	From      int         `json:"from"`
}

// UpdateRequest applies step K's update with the leader's lr and clip
// coefficient.
type UpdateRequest struct {
	K    int       `json:"k"`
	LR   WireFloat `json:"lr"`
	Clip WireFloat `json:"clip"`
}

// HistogramRequest is one round of the model-wide selection.
type HistogramRequest struct {
	Round  int    `json:"round"`
	Prefix uint32 `json:"prefix"`
}

// CountEqualRequest counts |z| keys equal to Key.
type CountEqualRequest struct {
	Key uint32 `json:"key"`
}

// ApplyTauRequest finishes step K with threshold Tau.
type ApplyTauRequest struct {
	K   int       `json:"k"`
	Tau WireFloat `json:"tau"`
}

// RestoreRequest loads the checkpoint image Ref from the blob store.
type RestoreRequest struct {
	Ref job.Ref `json:"ref"`
}

// CancelRequest aborts the running call with this envelope ID, if any (a
// coordinator whose context ended mid-call frees the shard at once).
type CancelRequest struct {
	ID string `json:"id"`
}

// Status describes a shard; served without waiting for a running call.
type Status struct {
	ID     string  `json:"id"`
	Epoch  uint64  `json:"epoch"`
	Part   nn.Part `json:"part"`
	Stage  int     `json:"stage"`
	Stages int     `json:"stages"`
	Step   int     `json:"step"` // last step whose Γ is applied
	Loaded bool    `json:"loaded"`
	// Running is the method of the call in progress ("" when idle).
	Running string `json:"running,omitempty"`
}

// RegisterRequest announces a shard process to the coordinator (method
// "register" on Subjects.Coordinator()). Addr is informational (host:pid,
// pod name); Standby asks to be held in reserve rather than given layers.
type RegisterRequest struct {
	ID      string `json:"id"`
	Addr    string `json:"addr"`
	Standby bool   `json:"standby,omitempty"`
}

// RegisterResponse is the coordinator's answer; OK false is a refusal
// (e.g. a duplicate ID) with the reason in Message.
type RegisterResponse struct {
	OK      bool   `json:"ok"`
	Message string `json:"message,omitempty"`
}

// CoordinatorRequest is the envelope of requests to the coordinator, the
// same shape as Envelope without epoch: {"method":"register","body":...}.
type CoordinatorRequest struct {
	Method string          `json:"method"`
	Body   json.RawMessage `json:"body,omitempty"`
}

// WireFloat is a float64 whose JSON form is exact: finite values as
// shortest round-trip numbers, non-finite ones as "NaN", "+Inf", "-Inf"
// (encoding/json refuses those, and a diverging run must still report).
type WireFloat float64

// MarshalJSON implements json.Marshaler.
func (f WireFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Inf"`), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *WireFloat) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("bad float %s: %w", b, err)
	}
	*f = WireFloat(v)
	return nil
}

func toStepReply(r StepResult) StepReply {
	out := StepReply{Step: r.Step, Loss: WireFloat(r.Loss), Count: r.Count, From: r.From}
	for _, g := range r.GradSumSq {
		out.GradSumSq = append(out.GradSumSq, WireFloat(g))
	}
	return out
}

func (r StepReply) result() StepResult {
	out := StepResult{Step: r.Step, Loss: float64(r.Loss), Count: r.Count, From: r.From}
	for _, g := range r.GradSumSq {
		out.GradSumSq = append(out.GradSumSq, float64(g))
	}
	return out
}

// Histogram replies are binary: the magic "UPH1" followed by one zstd frame
// of prune.HistBuckets (65536) uint64 counts, little endian (512 KiB raw).
// The counts are mostly zero (|z| keys concentrate in a few hundred
// high-half buckets; round 1 covers one bucket's keys only), so a round
// costs about 0.9 KB per shard on the wire instead of 512 KiB (measured on
// stories260K with 3 shards: 888 B per round in global mode, 946 B in
// frozen; the whole threshold protocol ≈ 2 KB per step per shard; see
// BenchmarkSearchStep). The cost grows with the spread of |z|, not with
// the model size.
const (
	histMagic    = "UPH1"
	histRawBytes = prune.HistBuckets * 8
)

var (
	histEncoder = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true))
		if err != nil {
			panic("shard: zstd encoder: " + err.Error()) // only fails on bad options
		}
		return e
	})
	histDecoder = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderMaxMemory(2*histRawBytes))
		if err != nil {
			panic("shard: zstd decoder: " + err.Error())
		}
		return d
	})
)

// EncodeHistogram appends the wire form of counts (HistBuckets long) to
// dst: little-endian uint64s, zstd-compressed.
func EncodeHistogram(dst []byte, counts []uint64) ([]byte, error) {
	if len(counts) != prune.HistBuckets {
		return nil, fmt.Errorf("histogram of %d buckets (want %d)", len(counts), prune.HistBuckets)
	}
	raw, ok := u64Bytes(counts)
	if !ok {
		raw = make([]byte, 0, histRawBytes)
		for _, c := range counts {
			raw = binary.LittleEndian.AppendUint64(raw, c)
		}
	}
	dst = append(dst, histMagic...)
	return histEncoder().EncodeAll(raw, dst), nil
}

// DecodeHistogram fills dst (HistBuckets long) from a histogram reply. On
// little-endian hosts it decompresses straight into dst: the coordinator
// decodes two replies per shard per step.
func DecodeHistogram(b []byte, dst []uint64) error {
	if len(dst) != prune.HistBuckets {
		return fmt.Errorf("histogram buffer of %d buckets (want %d)", len(dst), prune.HistBuckets)
	}
	if len(b) < len(histMagic) || string(b[:len(histMagic)]) != histMagic {
		return errors.New("histogram reply lacks its UPH1 header (not a shard histogram)")
	}
	view, inPlace := u64Bytes(dst)
	if !inPlace {
		view = make([]byte, 0, histRawBytes)
	}
	raw, err := histDecoder().DecodeAll(b[len(histMagic):], view[:0])
	if err != nil {
		return fmt.Errorf("histogram reply: %w", err)
	}
	if len(raw) != histRawBytes {
		return fmt.Errorf("histogram reply decodes to %d bytes (want %d)", len(raw), histRawBytes)
	}
	if inPlace && unsafe.SliceData(raw) == unsafe.SliceData(view) {
		return nil
	}
	for i := range dst {
		dst[i] = binary.LittleEndian.Uint64(raw[8*i:])
	}
	return nil
}

// u64Bytes views v as its little-endian wire bytes, when the host's
// layout is that (ok false on big-endian hosts).
func u64Bytes(v []uint64) (b []byte, ok bool) {
	var one uint16 = 1
	if *(*byte)(unsafe.Pointer(&one)) != 1 || len(v) == 0 {
		return nil, false
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 8*len(v)), true
}

// remoteCode returns the code of a handler error received over transport.
func remoteCode(err error) string {
	var re *transport.RemoteError
	if errors.As(err, &re) {
		return re.Code
	}
	return ""
}
