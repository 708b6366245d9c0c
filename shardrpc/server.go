package shardrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/prune"
	"github.com/unipruning/unipruning/transport"
)

// ServeOptions configures a shard Server.
type ServeOptions struct {
	// Blobs stores checkpoint and Γ images (shared with the coordinator and
	// with any shard that may restore them).
	Blobs BlobStore
	// StreamConfig configures the pipe streams to the neighbouring stages.
	StreamConfig transport.StreamConfig
	// Logger; default the connection's logger.
	Logger *slog.Logger
	// HeartbeatEvery is the heartbeat period; default 200 ms, negative: no
	// heartbeats.
	HeartbeatEvery time.Duration
	// Load makes the worker of an assigned part (shard.Load); required.
	Load Loader
	// BeforeCall, when set, runs before every locked method executes, under
	// the operation lock (tests: count executions, inject delays).
	BeforeCall func(method string)
}

// Server serves the control protocol (see wire.go) for one shard: it owns
// at most one Worker and its NATSPipe and runs one locked call at a time.
//
// Retries are harmless. transport.Call re-sends a request after a timeout
// with the same bytes, so with the same Envelope.ID. The server keeps, per
// method, the last call that completed successfully (envelope ID, epoch,
// step k, body, reply):
//   - a request whose ID equals the record's is answered with the recorded
//     reply without running again (assign, step, update, apply_tau,
//     restore);
//   - step, update and apply_tau are also idempotent per (epoch, k): a
//     request with another ID but the record's epoch and k gets the recorded
//     reply if its body is identical, and error code "conflict" otherwise
//     (update k applied twice would corrupt z and the Adam moments).
//
// A duplicate that arrives while the original still runs waits for the
// operation lock and then finds the record. Failed calls leave no record,
// so they run again (a failed step changes no persistent state). Records of
// step, update and apply_tau are dropped by restore and by an epoch change.
// Read-only methods (count, histogram, count_equal, checkpoint, gamma) are
// naturally idempotent and keep no record.
//
// Fencing: a locked call whose epoch is below the shard's is refused with
// code stale_epoch (and logged). An assign to a higher epoch raises the
// fence as soon as it arrives, aborts a running call of an older epoch
// (e.g. a step waiting for a neighbour that died) and then moves the
// shard: with the same spec and part the loaded worker and its state are
// kept and only the pipe is rebuilt for the new epoch's subjects.
type Server struct {
	conn  *transport.Conn
	subj  transport.Subjects
	id    string
	opts  ServeOptions
	log   *slog.Logger
	sem   chan struct{} // the operation lock; a channel so waiting honours ctx
	close sync.Once

	stopHandle, stopBeat func()

	// Guarded by sem.
	wk       Worker
	specHash string
	records  map[string]callRecord
	hist     []uint64
	broken   error // a failed reset left the state invalid

	mu     sync.Mutex // guards what status reads without the operation lock
	epoch  uint64
	fence  uint64 // highest epoch an assign announced, possibly still queued
	part   nn.Part
	stage  int
	stages int
	step   int
	loaded bool
	op     runningOp
	pipe   *NATSPipe // written holding both locks, so the sem holder may read it alone
}

// runningOp is the call holding the operation lock.
type runningOp struct {
	method, id string
	epoch      uint64
	cancel     context.CancelFunc
}

type callRecord struct {
	id    string
	epoch uint64
	k     int
	body  []byte
	reply []byte
}

// Serve starts answering control requests for shard id on
// subj.Control(id) and publishing heartbeats on subj.HeartbeatOf(id). It runs
// until ctx ends or Close is called. The shard holds no part until the
// coordinator assigns one; call Register to announce it.
func Serve(ctx context.Context, conn *transport.Conn, subj transport.Subjects, id string, opts ServeOptions) (*Server, error) {
	if opts.Load == nil {
		return nil, fmt.Errorf("shard %s: no worker loader configured", id)
	}
	ctl, err := subj.Control(id)
	if err != nil {
		return nil, err
	}
	hb, err := subj.HeartbeatOf(id)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = conn.Logger()
	}
	if opts.StreamConfig.Logger == nil {
		opts.StreamConfig.Logger = log
	}
	s := &Server{conn: conn, subj: subj, id: id, opts: opts, log: log.With("shard", id),
		sem: make(chan struct{}, 1), records: map[string]callRecord{}}
	if s.stopHandle, err = conn.Handle(ctl, "", s.handle); err != nil {
		return nil, err
	}
	s.stopBeat = func() {}
	if every := opts.HeartbeatEvery; every >= 0 {
		if every == 0 {
			every = 200 * time.Millisecond
		}
		s.stopBeat = transport.StartHeartbeat(conn, hb, id, s.Epoch, every)
	}
	context.AfterFunc(ctx, func() { s.Close() })
	s.log.Info("shard serving", "subject", ctl)
	return s, nil
}

// Close stops serving and heartbeats (a final "leaving" beat tells the
// coordinator at once), aborts a running call and releases the worker.
func (s *Server) Close() error {
	var err error
	s.close.Do(func() {
		s.stopHandle() // cancels running handlers and waits for them
		s.stopBeat()
		s.sem <- struct{}{}
		defer func() { <-s.sem }()
		err = s.unload()
	})
	return err
}

// Epoch is the shard's current epoch.
func (s *Server) Epoch() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// Status describes the shard without waiting for a running call.
func (s *Server) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Status{ID: s.id, Epoch: s.epoch, Part: s.part, Stage: s.stage, Stages: s.stages,
		Step: s.step, Loaded: s.loaded, Running: s.op.method}
}

// PipeStats returns the traffic counters of the current pipe (zero when
// no part is assigned).
func (s *Server) PipeStats() PipeStats {
	s.mu.Lock()
	p := s.pipe
	s.mu.Unlock()
	if p == nil {
		return PipeStats{}
	}
	return p.Stats()
}

// handle decodes one request and runs it.
func (s *Server) handle(ctx context.Context, b []byte) ([]byte, error) {
	// With a roster the transport has verified the signature; only
	// coordinators drive a shard (DESIGN §5.1).
	if err := transport.RequireRole(ctx, transport.RoleCoordinator); err != nil {
		s.log.Warn("refusing a control call", "err", err)
		return nil, err
	}
	var env Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, transport.WithCode(transport.CodeBadRequest, fmt.Errorf("decode envelope: %w", err))
	}
	if env.ID == "" {
		env.ID = transport.RequestID(ctx)
	}
	switch env.Method {
	case MethodPing:
		return []byte("{}"), nil
	case MethodStatus:
		return json.Marshal(s.Status())
	case MethodCancel:
		return s.doCancel(&env)
	}
	m, ok := methods[env.Method]
	if !ok {
		return nil, transport.WithCode(CodeUnknownMethod, fmt.Errorf("unknown method %q", env.Method))
	}
	return s.runLocked(ctx, &env, m)
}

// method describes a locked method.
type method struct {
	run        func(s *Server, ctx context.Context, env *Envelope) ([]byte, error)
	needWorker bool
	record     bool // remember the last success (dedupe by ID)
	perStep    bool // also dedupe by (epoch, k)
}

var methods = map[string]method{
	MethodAssign:     {run: (*Server).doAssign, record: true},
	MethodCount:      {run: (*Server).doCount, needWorker: true},
	MethodStep:       {run: (*Server).doStep, needWorker: true, record: true, perStep: true},
	MethodUpdate:     {run: (*Server).doUpdate, needWorker: true, record: true, perStep: true},
	MethodHistogram:  {run: (*Server).doHistogram, needWorker: true},
	MethodCountEqual: {run: (*Server).doCountEqual, needWorker: true},
	MethodApplyTau:   {run: (*Server).doApplyTau, needWorker: true, record: true, perStep: true},
	MethodCheckpoint: {run: (*Server).doCheckpoint, needWorker: true},
	MethodRestore:    {run: (*Server).doRestore, needWorker: true, record: true},
	MethodGamma:      {run: (*Server).doGamma, needWorker: true},
}

// runLocked fences, dedupes and runs a method under the operation lock.
func (s *Server) runLocked(ctx context.Context, env *Envelope, m method) ([]byte, error) {
	// Everything is checked before any state changes: a malformed or
	// impossible request must not move the fence (issue 12 class 5).
	k, err := validateRequest(env)
	if err != nil {
		s.log.Warn("rejecting a malformed request", "method", env.Method, "epoch", env.Epoch, "request", env.ID, "err", err)
		return nil, err
	}
	if env.Method == MethodAssign {
		s.preempt(env.Epoch)
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.sem }()
	if err := s.admit(env, m); err != nil {
		return nil, err
	}
	if reply, ok, err := s.replay(env, m, k); ok {
		return reply, err
	}
	ctx, done := s.beginOp(ctx, env)
	defer done()
	if s.opts.BeforeCall != nil {
		s.opts.BeforeCall(env.Method)
	}
	reply, err := m.run(s, ctx, env)
	if err == nil && m.record {
		s.records[env.Method] = callRecord{id: env.ID, epoch: env.Epoch, k: k, body: env.Body, reply: reply}
	}
	return reply, err
}

// admit applies epoch fencing: only assign may move the shard forward,
// and once an assign to epoch E has arrived nothing older runs, even
// before the assign itself gets the operation lock.
func (s *Server) admit(env *Envelope, m method) error {
	s.mu.Lock()
	cur, floor := s.epoch, max(s.epoch, s.fence)
	s.mu.Unlock()
	switch {
	case env.Epoch < floor:
		s.log.Warn("fenced: rejecting a call from a stale epoch", "method", env.Method,
			"call_epoch", env.Epoch, "shard_epoch", floor, "request", env.ID)
		return transport.WithCode(CodeStaleEpoch, fmt.Errorf("shard %s is at epoch %d, call %s carries stale epoch %d",
			s.id, floor, env.Method, env.Epoch))
	case env.Epoch > cur && env.Method != MethodAssign:
		return transport.WithCode(CodeEpochAhead, fmt.Errorf("shard %s is at epoch %d, call %s carries epoch %d: assign the shard to it first",
			s.id, cur, env.Method, env.Epoch))
	case m.needWorker && s.wk == nil:
		return transport.WithCode(CodeNotAssigned, fmt.Errorf("shard %s has no part assigned", s.id))
	case s.broken != nil && m.needWorker && env.Method != MethodRestore && env.Method != MethodCount:
		return transport.WithCode(CodeNeedsRestore, fmt.Errorf("shard %s: a failed reset left its state invalid (%v): restore a checkpoint or reassign", s.id, s.broken))
	}
	return nil
}

// validateRequest decodes and checks a locked method's body without
// touching any state. It returns the step k of a per-step method (0 for
// the others).
func validateRequest(env *Envelope) (k int, err error) {
	if env.Epoch == 0 {
		return 0, transport.WithCode(transport.CodeBadRequest, fmt.Errorf("%s: epoch 0 (calls carry their assignment's epoch ≥ 1)", env.Method))
	}
	switch env.Method {
	case MethodAssign:
		var a AssignRequest
		if err := decodeBody(env, &a); err != nil {
			return 0, err
		}
		if err := checkAssign(a); err != nil {
			return 0, transport.WithCode(transport.CodeBadRequest, fmt.Errorf("assign: %w", err))
		}
		spec := a.Spec
		spec.Defaults()
		if err := spec.Validate(); err != nil {
			return 0, transport.WithCode(CodeInvalidInput, fmt.Errorf("assign: %w", err))
		}
	case MethodStep, MethodUpdate, MethodApplyTau: // the per-step methods
		var b struct {
			K int `json:"k"`
		}
		if err := decodeBody(env, &b); err != nil {
			return 0, err
		}
		if b.K < 1 {
			return 0, transport.WithCode(transport.CodeBadRequest, fmt.Errorf("%s: step %d", env.Method, b.K))
		}
		return b.K, nil
	case MethodRestore:
		var r RestoreRequest
		return 0, decodeBody(env, &r)
	}
	return 0, nil
}

// replay answers a repeated call from the record (see Server).
func (s *Server) replay(env *Envelope, m method, k int) ([]byte, bool, error) {
	rec, ok := s.records[env.Method]
	if !ok || !m.record {
		return nil, false, nil
	}
	if rec.id == env.ID {
		s.log.Info("repeated request answered from the record", "method", env.Method, "request", env.ID)
		return rec.reply, true, nil
	}
	if !m.perStep || rec.epoch != env.Epoch || rec.k != k {
		return nil, false, nil
	}
	if !bytes.Equal(rec.body, env.Body) {
		return nil, true, transport.WithCode(CodeConflict, fmt.Errorf("%s of step %d at epoch %d already ran with other arguments (%s, now %s)",
			env.Method, k, env.Epoch, rec.body, env.Body))
	}
	s.log.Info("call of an already completed step answered from the record", "method", env.Method, "k", k, "request", env.ID)
	return rec.reply, true, nil
}

// beginOp publishes the running call so status shows it and an epoch bump
// or a cancel request can abort it.
func (s *Server) beginOp(ctx context.Context, env *Envelope) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	s.op = runningOp{method: env.Method, id: env.ID, epoch: env.Epoch, cancel: cancel}
	s.mu.Unlock()
	return ctx, func() {
		cancel()
		s.mu.Lock()
		s.op = runningOp{}
		s.mu.Unlock()
	}
}

// preempt raises the fence to an assign's epoch and aborts a running call
// of an older epoch: the assign must not wait for a step blocked on a
// neighbour that is gone, nor for older calls queued behind it.
func (s *Server) preempt(epoch uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if epoch <= max(s.epoch, s.fence) {
		return // a stale or same-epoch assign: admit decides
	}
	s.fence = epoch
	if s.op.cancel != nil && s.op.epoch < epoch {
		s.log.Warn("aborting a call of an older epoch for an assign", "method", s.op.method, "op_epoch", s.op.epoch, "epoch", epoch)
		s.op.cancel()
	}
}

func (s *Server) doCancel(env *Envelope) ([]byte, error) {
	var req CancelRequest
	if err := json.Unmarshal(env.Body, &req); err != nil {
		return nil, transport.WithCode(transport.CodeBadRequest, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.op.cancel != nil && s.op.id == req.ID && env.Epoch >= s.op.epoch {
		s.log.Info("cancelling a call at the caller's request", "method", s.op.method, "request", req.ID)
		s.op.cancel()
	}
	return []byte("{}"), nil
}

// setState updates what status reports.
func (s *Server) setState(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

// unload closes the pipe and worker; call under the operation lock.
func (s *Server) unload() error {
	var errs []error
	if s.pipe != nil {
		errs = append(errs, s.pipe.Close())
	}
	if s.wk != nil {
		errs = append(errs, s.wk.Close())
	}
	s.wk, s.specHash = nil, ""
	s.setState(func() { s.pipe, s.loaded = nil, false })
	return errors.Join(errs...)
}

// dropStepRecords forgets per-step records: the state they answered for
// is gone (restore, new epoch).
func (s *Server) dropStepRecords() {
	for _, name := range []string{MethodStep, MethodUpdate, MethodApplyTau} {
		delete(s.records, name)
	}
}

func decodeBody(env *Envelope, v any) error {
	if err := json.Unmarshal(env.Body, v); err != nil {
		return transport.WithCode(transport.CodeBadRequest, fmt.Errorf("%s: decode body: %w", env.Method, err))
	}
	return nil
}

// CodeNeedsRestore is the error code of calls refused because a failed
// restore left the shard's state partly overwritten.
const CodeNeedsRestore = "needs_restore"

func countReply(n uint64) ([]byte, error) { return json.Marshal(CountReply{Count: n}) }

func checkAssign(a AssignRequest) error {
	p := a.Part
	switch {
	case a.Stages < 1 || a.Stage < 0 || a.Stage >= a.Stages:
		return fmt.Errorf("stage %d of %d", a.Stage, a.Stages)
	case p.From < 0 || p.From >= p.To:
		return fmt.Errorf("empty or negative layer range [%d,%d)", p.From, p.To)
	case p.Embed != (a.Stage == 0) || p.Head != (a.Stage == a.Stages-1):
		// The pipe's ends follow the stage index; a part that embeds or
		// computes the loss elsewhere would wait on a neighbour forever.
		return fmt.Errorf("part %+v does not fit stage %d of %d (embedding on the first stage, head on the last)", p, a.Stage, a.Stages)
	}
	return nil
}

// doAssign (re)creates the worker for a part. Same spec and part under a
// new epoch (or stage numbering) keep the loaded worker and its state and
// only rebuild the pipe; the coordinator restores a checkpoint afterwards
// if it rolls back.
func (s *Server) doAssign(ctx context.Context, env *Envelope) ([]byte, error) {
	var a AssignRequest
	if err := decodeBody(env, &a); err != nil { // checked by validateRequest
		return nil, err
	}
	a.Spec.Defaults()
	hash := a.Spec.Hash()
	st := s.Status()
	keep := s.wk != nil && s.broken == nil && s.specHash == hash && st.Part == a.Part
	if keep && env.Epoch == st.Epoch && st.Stage == a.Stage && st.Stages == a.Stages {
		return countReply(s.wk.Count())
	}
	if env.Epoch != st.Epoch {
		s.log.Info("moving to a new epoch", "from", st.Epoch, "to", env.Epoch)
	}
	// The fence moves even if loading fails below: the old epoch is over.
	s.setState(func() { s.epoch = env.Epoch })
	s.dropStepRecords()
	if err := s.install(a, hash, env.Epoch, keep); err != nil {
		return nil, err
	}
	s.setState(func() {
		s.part, s.stage, s.stages, s.step, s.loaded = a.Part, a.Stage, a.Stages, s.wk.LastStep(), true
	})
	s.log.Info("assigned", "epoch", env.Epoch, "part", fmt.Sprintf("%+v", a.Part), "stage", a.Stage, "stages", a.Stages, "kept_state", keep)
	return countReply(s.wk.Count())
}

// install builds the new pipe and, unless keep, a new worker. The old pipe
// goes first: under the same epoch and stage the new one uses its subjects.
func (s *Server) install(a AssignRequest, hash string, epoch uint64, keep bool) error {
	var err error
	if keep {
		err = s.pipe.Close()
		s.setState(func() { s.pipe = nil })
	} else {
		err = s.unload()
	}
	if err != nil {
		s.log.Warn("closing the previous pipe or worker", "err", err)
	}
	pipe, err := NewNATSPipe(s.conn, s.subj, epoch, a.Stage, a.Stages, s.opts.StreamConfig)
	if err != nil {
		if keep {
			// The kept worker holds the closed pipe: drop it, so the next
			// assign loads afresh instead of "keeping" a worker with no pipe.
			s.unload()
		}
		return err
	}
	if keep {
		s.wk.SetPipe(pipe)
	} else if err := s.load(a, hash, pipe); err != nil {
		pipe.Close()
		return err
	}
	pipe.SetWidth(s.wk.Config().Dim)
	s.setState(func() { s.pipe = pipe })
	return nil
}

func (s *Server) load(a AssignRequest, hash string, pipe Pipe) error {
	start := time.Now()
	wk, err := s.opts.Load(a.Spec, a.Part, pipe)
	if err != nil {
		err = fmt.Errorf("load part %+v: %w", a.Part, err)
		if job.ClassOf(err) == job.InvalidInput {
			err = transport.WithCode(CodeInvalidInput, err) // the coordinator fails the job, no retry
		}
		return err
	}
	s.wk, s.specHash, s.broken = wk, hash, nil
	s.log.Info("part loaded", "count", wk.Count(), "seconds", time.Since(start).Seconds())
	return nil
}

func (s *Server) doCount(ctx context.Context, env *Envelope) ([]byte, error) {
	return countReply(s.wk.Count())
}

func (s *Server) doStep(ctx context.Context, env *Envelope) ([]byte, error) {
	var r StepRequest
	if err := decodeBody(env, &r); err != nil {
		return nil, err
	}
	res, err := s.wk.Step(ctx, r.K)
	if err != nil {
		return nil, err
	}
	return json.Marshal(toStepReply(res))
}

func (s *Server) doUpdate(ctx context.Context, env *Envelope) ([]byte, error) {
	var r UpdateRequest
	if err := decodeBody(env, &r); err != nil {
		return nil, err
	}
	if err := s.wk.Update(ctx, r.K, float64(r.LR), float64(r.Clip)); err != nil {
		return nil, err
	}
	return []byte("{}"), nil
}

func (s *Server) doHistogram(ctx context.Context, env *Envelope) ([]byte, error) {
	var r HistogramRequest
	if err := decodeBody(env, &r); err != nil {
		return nil, err
	}
	if s.hist == nil {
		s.hist = make([]uint64, prune.HistBuckets)
	}
	if err := s.wk.Histogram(ctx, prune.HistQuery{Round: r.Round, Prefix: r.Prefix}, s.hist); err != nil {
		return nil, err
	}
	return EncodeHistogram(nil, s.hist)
}

func (s *Server) doCountEqual(ctx context.Context, env *Envelope) ([]byte, error) {
	var r CountEqualRequest
	if err := decodeBody(env, &r); err != nil {
		return nil, err
	}
	n, err := s.wk.CountEqual(ctx, r.Key)
	if err != nil {
		return nil, err
	}
	return countReply(n)
}

func (s *Server) doApplyTau(ctx context.Context, env *Envelope) ([]byte, error) {
	var r ApplyTauRequest
	if err := decodeBody(env, &r); err != nil {
		return nil, err
	}
	if err := s.wk.ApplyTau(ctx, r.K, float32(r.Tau)); err != nil {
		return nil, err
	}
	s.setState(func() { s.step = r.K })
	return []byte("{}"), nil
}

func (s *Server) doCheckpoint(ctx context.Context, env *Envelope) ([]byte, error) {
	return s.storeImage(ctx, s.wk.Checkpoint)
}

func (s *Server) doGamma(ctx context.Context, env *Envelope) ([]byte, error) {
	return s.storeImage(ctx, s.wk.GammaPart)
}

func (s *Server) storeImage(ctx context.Context, image func() ([]byte, error)) ([]byte, error) {
	if s.opts.Blobs == nil {
		return nil, fmt.Errorf("shard %s has no blob store configured", s.id)
	}
	img, err := image()
	if err != nil {
		return nil, err
	}
	ref, err := PutImage(ctx, s.opts.Blobs, img)
	if err != nil {
		return nil, err
	}
	return json.Marshal(ref)
}

// checkRestoreRef refuses a restore whose reference carries no sha256: a
// coordinator restores only manifests committed in Raft, which always
// carry the image's sha256, and FetchImage then accepts exactly that
// image (its spec hash and layer range are checked by the worker).
func checkRestoreRef(ref job.Ref) error {
	if len(ref.SHA256) != 64 {
		return transport.WithCode(transport.CodeBadRequest, fmt.Errorf(
			"restore %.12s: the reference has no sha256 (a restore takes only a checkpoint committed with its sha256)", ref.Key))
	}
	return nil
}

// doRestore loads a verified checkpoint image, or resets the worker for an
// empty Ref (API.Restore). A rejected image leaves the state untouched
// (Worker.Restore checks everything before copying); only a failed reset
// leaves it invalid, and then the shard refuses work until a restore or a
// reassignment succeeds.
func (s *Server) doRestore(ctx context.Context, env *Envelope) ([]byte, error) {
	var r RestoreRequest
	if err := decodeBody(env, &r); err != nil {
		return nil, err
	}
	if r.Ref.Key == "" {
		s.dropStepRecords()
		if err := s.wk.Reset(); err != nil {
			s.broken = err
			return nil, fmt.Errorf("reset: %w", err)
		}
	} else {
		if s.opts.Blobs == nil {
			return nil, fmt.Errorf("shard %s has no blob store configured", s.id)
		}
		if err := checkRestoreRef(r.Ref); err != nil {
			return nil, err
		}
		s.dropStepRecords()
		img, err := FetchImage(ctx, s.opts.Blobs, r.Ref)
		if err == nil {
			err = s.wk.Restore(img)
		}
		if err != nil {
			return nil, fmt.Errorf("restore %.12s: %w", r.Ref.Key, err)
		}
	}
	s.broken = nil
	s.setState(func() { s.step = s.wk.LastStep() })
	s.log.Info("restored", "key", r.Ref.Key, "step", s.wk.LastStep())
	return []byte("{}"), nil
}
