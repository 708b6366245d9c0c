package shardrpc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/prune"
	"github.com/unipruning/unipruning/transport"
)

// CallOptions tunes a Remote's calls.
type CallOptions struct {
	// Long bounds each attempt of assign, step, update, apply_tau,
	// checkpoint, restore and gamma; default 10 min. A step waits for its
	// neighbours' forward and backward, so it must cover a whole pipeline
	// pass of the slowest shard.
	Long time.Duration
	// Short bounds each attempt of count, histogram, count_equal, status
	// and ping; default 30 s.
	Short time.Duration
	// Retries after a timeout or when no server is subscribed (restarting
	// shard); default 2, negative: none. Every method may be retried: the
	// read-only ones are naturally idempotent, and the server dedupes the
	// others (see Server).
	Retries int
	// Backoff before the first retry, doubling; default 200 ms.
	Backoff time.Duration
}

func (o CallOptions) withDefaults() CallOptions {
	if o.Long <= 0 {
		o.Long = 10 * time.Minute
	}
	if o.Short <= 0 {
		o.Short = 30 * time.Second
	}
	if o.Retries == 0 {
		o.Retries = 2
	} else if o.Retries < 0 {
		o.Retries = 0
	}
	if o.Backoff <= 0 {
		o.Backoff = 200 * time.Millisecond
	}
	return o
}

// Remote drives a shard Server over NATS; it implements API. Every call
// carries the Remote's epoch; the coordinator makes new Remotes for a new
// epoch.
type Remote struct {
	conn    *transport.Conn
	subject string
	subjErr error // an invalid id, reported by every call
	id      string
	part    nn.Part
	opts    CallOptions
	epoch   uint64
	session string // prefix of envelope IDs, random per Remote
	seq     atomic.Uint64

	mu    sync.Mutex
	stats map[string]MethodStats
}

// MethodStats counts one method's calls and their request/reply bytes.
type MethodStats struct {
	Calls, Errors        uint64
	ReqBytes, ReplyBytes uint64
}

var _ API = (*Remote)(nil)

// NewRemote returns a client for shard id, which owns (or is to be
// assigned) part, at epoch. Subject errors (an invalid id) surface on the
// first call.
func NewRemote(conn *transport.Conn, subj transport.Subjects, id string, part nn.Part, epoch uint64, opts CallOptions) *Remote {
	ctl, err := subj.Control(id)
	var b [6]byte
	_, _ = rand.Read(b[:])
	r := &Remote{conn: conn, subject: ctl, subjErr: err, id: id, part: part, opts: opts.withDefaults(),
		session: hex.EncodeToString(b[:]), stats: map[string]MethodStats{}, epoch: epoch}
	return r
}

// ID names the shard.
func (r *Remote) ID() string { return r.id }

// Part is the part the shard owns.
func (r *Remote) Part() nn.Part { return r.part }

// Epoch is the epoch the Remote's calls carry.
func (r *Remote) Epoch() uint64 { return r.epoch }

// Stats returns per-method traffic counters.
func (r *Remote) Stats() map[string]MethodStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]MethodStats, len(r.stats))
	for k, v := range r.stats {
		out[k] = v
	}
	return out
}

// Assign gives the shard the Remote's part as stage of stages under the
// Remote's epoch, loading it if needed, and returns its target count.
func (r *Remote) Assign(ctx context.Context, spec job.Spec, stage, stages int) (uint64, error) {
	var c CountReply
	err := r.callJSON(ctx, MethodAssign, AssignRequest{Spec: spec, Part: r.part, Stage: stage, Stages: stages}, &c)
	return c.Count, err
}

// Status asks the shard how it is (answered even while it runs a call).
func (r *Remote) Status(ctx context.Context) (Status, error) {
	var st Status
	err := r.callJSON(ctx, MethodStatus, nil, &st)
	return st, err
}

// Count is the number of owned target weights.
func (r *Remote) Count(ctx context.Context) (uint64, error) {
	var c CountReply
	err := r.callJSON(ctx, MethodCount, nil, &c)
	return c.Count, err
}

// Step runs step k's forward/backward.
func (r *Remote) Step(ctx context.Context, k int) (StepResult, error) {
	var rep StepReply
	if err := r.callJSON(ctx, MethodStep, StepRequest{K: k}, &rep); err != nil {
		return StepResult{}, err
	}
	return rep.result(), nil
}

// Update applies step k's metric, optimizer and z update.
func (r *Remote) Update(ctx context.Context, k int, lr, clipCoef float64) error {
	return r.callJSON(ctx, MethodUpdate, UpdateRequest{K: k, LR: WireFloat(lr), Clip: WireFloat(clipCoef)}, nil)
}

// Histogram answers a selection round.
func (r *Remote) Histogram(ctx context.Context, q prune.HistQuery, dst []uint64) error {
	out, err := r.call(ctx, MethodHistogram, HistogramRequest{Round: q.Round, Prefix: q.Prefix})
	if err != nil {
		return err
	}
	if err := DecodeHistogram(out, dst); err != nil {
		return fmt.Errorf("shard %s: %w", r.id, err)
	}
	return nil
}

// CountEqual counts keys equal to key.
func (r *Remote) CountEqual(ctx context.Context, key uint32) (uint64, error) {
	var c CountReply
	err := r.callJSON(ctx, MethodCountEqual, CountEqualRequest{Key: key}, &c)
	return c.Count, err
}

// ApplyTau finishes step k.
func (r *Remote) ApplyTau(ctx context.Context, k int, tau float32) error {
	return r.callJSON(ctx, MethodApplyTau, ApplyTauRequest{K: k, Tau: WireFloat(tau)}, nil)
}

// Checkpoint stores the shard state in the blob store.
func (r *Remote) Checkpoint(ctx context.Context) (job.Ref, error) {
	var ref job.Ref
	err := r.callJSON(ctx, MethodCheckpoint, nil, &ref)
	return ref, err
}

// Restore loads a stored state.
func (r *Remote) Restore(ctx context.Context, ref job.Ref) error {
	return r.callJSON(ctx, MethodRestore, RestoreRequest{Ref: ref}, nil)
}

// GammaPart stores the shard's Γ part.
func (r *Remote) GammaPart(ctx context.Context) (job.Ref, error) {
	var ref job.Ref
	err := r.callJSON(ctx, MethodGamma, nil, &ref)
	return ref, err
}

func (r *Remote) callJSON(ctx context.Context, method string, body, out any) error {
	b, err := r.call(ctx, method, body)
	if err != nil || out == nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("shard %s: %s: decode reply: %w", r.id, method, err)
	}
	return nil
}

// call sends one request. Transport retries re-send the same envelope, so
// the server sees one ID however many attempts it takes.
func (r *Remote) call(ctx context.Context, method string, body any) ([]byte, error) {
	if r.subjErr != nil {
		return nil, fmt.Errorf("shard %s: %w", r.id, r.subjErr)
	}
	env := Envelope{Method: method, ID: fmt.Sprintf("%s-%d", r.session, r.seq.Add(1)), Epoch: r.Epoch()}
	if body != nil {
		var err error
		if env.Body, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("shard %s: %s: encode: %w", r.id, method, err)
		}
	}
	req, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	out, err := r.conn.Call(ctx, r.subject, req, r.callOptions(method))
	r.count(method, len(req), len(out), err)
	if err == nil {
		return out, nil
	}
	if ctx.Err() != nil && r.isLong(method) {
		r.cancelRemote(env)
	}
	return nil, r.wrap(method, err)
}

func (r *Remote) isLong(method string) bool {
	switch method {
	case MethodCount, MethodHistogram, MethodCountEqual, MethodStatus, MethodPing:
		return false
	}
	return true
}

func (r *Remote) callOptions(method string) transport.CallOptions {
	o := transport.CallOptions{Timeout: r.opts.Short, Retries: r.opts.Retries, Backoff: r.opts.Backoff}
	if r.isLong(method) {
		o.Timeout = r.opts.Long
	}
	return o
}

// cancelRemote asks the server to abort a long call whose caller gave up
// (e.g. the coordinator cancelled a step because another shard failed), so
// the shard does not sit on its operation lock until the call's timeout.
// Best effort: the server ignores it if the call is no longer running.
func (r *Remote) cancelRemote(env Envelope) {
	body, _ := json.Marshal(CancelRequest{ID: env.ID})
	req, _ := json.Marshal(Envelope{Method: MethodCancel, Epoch: env.Epoch, Body: body})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _ = r.conn.Call(ctx, r.subject, req, transport.CallOptions{Timeout: 2 * time.Second})
}

func (r *Remote) count(method string, req, reply int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats[method]
	st.Calls++
	st.ReqBytes += uint64(req)
	st.ReplyBytes += uint64(reply)
	if err != nil {
		st.Errors++
	}
	r.stats[method] = st
}

// wrap names the shard and method; a fenced call also matches
// ErrStaleEpoch with errors.Is.
func (r *Remote) wrap(method string, err error) error {
	if remoteCode(err) == CodeStaleEpoch {
		return fmt.Errorf("shard %s: %s at epoch %d: %w: %w", r.id, method, r.Epoch(), ErrStaleEpoch, err)
	}
	return fmt.Errorf("shard %s: %s: %w", r.id, method, err)
}

// IsCode reports whether err is a shard's error with the given code
// (CodeStaleEpoch, CodeChecksum, ...).
func IsCode(err error, code string) bool { return remoteCode(err) == code }

// Register announces shard id to the coordinator (method "register" on
// subj.Coordinator()), retrying until the coordinator answers: no
// coordinator yet, an election in progress or a lost reply are all
// retried with backoff up to 5 s. A refusal (OK false) is returned as an
// error; so is ctx ending.
func Register(ctx context.Context, conn *transport.Conn, subj transport.Subjects, id, addr string) error {
	_, err := RegisterWith(ctx, conn, subj, RegisterRequest{ID: id, Addr: addr})
	return err
}

// RegisterWith is Register with the full request (e.g. Standby).
func RegisterWith(ctx context.Context, conn *transport.Conn, subj transport.Subjects, req RegisterRequest) (RegisterResponse, error) {
	coord, err := subj.Coordinator()
	if err != nil {
		return RegisterResponse{}, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return RegisterResponse{}, err
	}
	env := CoordinatorRequest{Method: "register", Body: body}
	log := conn.Logger().With("shard", req.ID)
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		var resp RegisterResponse
		err := transport.CallJSON(ctx, conn, coord, env, &resp, transport.CallOptions{Timeout: 5 * time.Second})
		switch {
		case err == nil && resp.OK:
			log.Info("registered with the coordinator", "attempts", attempt)
			return resp, nil
		case err == nil:
			return resp, fmt.Errorf("shard %s: coordinator refused registration: %s", req.ID, resp.Message)
		case IsCode(err, transport.CodeUnauthorized):
			// No retry makes a wrong credential right.
			return resp, fmt.Errorf("shard %s: coordinator refused registration: %w", req.ID, err)
		case ctx.Err() != nil:
			return resp, fmt.Errorf("shard %s: register: %w (last error: %v)", req.ID, ctx.Err(), err)
		}
		log.Info("registration not acknowledged yet; retrying", "attempt", attempt, "err", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return resp, fmt.Errorf("shard %s: register: %w (last error: %v)", req.ID, ctx.Err(), err)
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
