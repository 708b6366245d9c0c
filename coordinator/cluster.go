package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/unipruning/unipruning/consensus"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/shardrpc"
	"github.com/unipruning/unipruning/transport"
)

// NodeConfig wires a coordinator replica.
type NodeConfig struct {
	ID   string
	Raft *consensus.Node
	Conn *transport.Conn
	Subj transport.Subjects
	// Job, when set, is submitted by whichever replica leads first and
	// finds no job in the log (every replica may be given the same file).
	Job *job.Job
	// Finish writes the Γ store when the search completes (on the leader)
	// and returns facts to record in Raft (e.g. the manifest's blob key).
	Finish func(ctx context.Context, spec job.Spec, refs []job.Ref, parts []nn.Part, steps map[int]job.StepFacts) (map[string]string, error)
	// Check validates the job's inputs (files exist and parse, formats,
	// seqlen within the model's context) before the leader runs it; an
	// error fails the job as invalid input. Nil: only job.Validate.
	Check            func(*job.Job) error
	HeartbeatTimeout time.Duration
	// MaxFailures: a transient failure with the same cause this many
	// times without progress, or 4× as many failures of any causes, mark
	// the job failed (0: 5). Each cause backs off exponentially up to 10 s.
	MaxFailures int
	// ShardWait bounds how long an attempt waits for enough live shards
	// (0: 2 min); running out counts as a transient failure.
	ShardWait time.Duration
	// FinishTimeout bounds writing the Γ store at the end (0: 10 min).
	FinishTimeout time.Duration
	// Linger keeps a replica running this long after the job is done, so
	// followers learn the final entries before the leader exits (0: 2 s).
	Linger time.Duration
	// StayAfterDone keeps serving status after the job ended (until ctx
	// ends), e.g. under a StatefulSet that restarts exited containers.
	StayAfterDone bool
	Calls         shardrpc.CallOptions
	// Dial returns the client of shard id, which is to own part under
	// epoch (default: a shardrpc.Remote over Conn; tests: in-process fakes).
	Dial    func(id string, part nn.Part, epoch uint64) shardrpc.API
	OnStep  func(StepInfo)
	Log     *slog.Logger
	Metrics *Metrics
}

// Node is one coordinator replica. Every replica runs Run; the Raft leader
// drives the job, the others wait to take over.
type Node struct {
	cfg   NodeConfig
	log   *slog.Logger
	alive *liveness
	mu    sync.Mutex
	info  Status
	// epochFloor is the highest epoch a shard was found fenced at beyond
	// Raft's (a forged or lost assign); the next assignment goes above it.
	epochFloor uint64
	remotes    []shardrpc.API // of the current attempt (guarded by mu)
}

// NewNode prepares a replica.
func NewNode(cfg NodeConfig) *Node {
	if cfg.HeartbeatTimeout == 0 {
		cfg.HeartbeatTimeout = 2 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.MaxFailures == 0 {
		cfg.MaxFailures = 5
	}
	if cfg.Linger == 0 {
		cfg.Linger = 2 * time.Second
	}
	if cfg.ShardWait == 0 {
		cfg.ShardWait = 2 * time.Minute
	}
	if cfg.FinishTimeout == 0 {
		cfg.FinishTimeout = 10 * time.Minute
	}
	if cfg.Dial == nil {
		cfg.Dial = func(id string, part nn.Part, epoch uint64) shardrpc.API {
			return shardrpc.NewRemote(cfg.Conn, cfg.Subj, id, part, epoch, cfg.Calls)
		}
	}
	return &Node{cfg: cfg, log: cfg.Log.With("coordinator", cfg.ID), alive: newLiveness()}
}

// Run serves until the job ended (nil when done, a *JobFailedError when
// failed) or ctx ends. The job's end is read from Raft, so every replica,
// restarted or not, reports the same outcome.
func (n *Node) Run(ctx context.Context) error {
	stopHB, err := transport.WatchHeartbeatEvents(n.cfg.Conn, mustSubject(n.cfg.Subj.Heartbeat()), n.cfg.HeartbeatTimeout, n.alive.onEvent)
	if err != nil {
		return err
	}
	defer stopHB()
	stopStatus, err := n.serveStatus()
	if err != nil {
		return err
	}
	defer stopStatus()
	stopRetry, err := n.serveRetry()
	if err != nil {
		return err
	}
	defer stopRetry()
	lead, cancel := n.cfg.Raft.SubscribeLeader()
	defer cancel()
	for {
		if st := n.cfg.Raft.State(); st.Ended() {
			reopened, err := n.finish(ctx, st)
			if !reopened {
				return err
			}
			n.log.Info("the failed job was reopened by a retry")
			continue
		}
		if n.cfg.Raft.IsLeader() {
			if err := n.leadWhileLeader(ctx, lead); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-lead:
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// JobFailedError is what Run returns for a failed job: the reason and its
// class as recorded in Raft.
type JobFailedError struct {
	Reason string
	Class  string
}

func (e *JobFailedError) Error() string {
	return fmt.Sprintf("job failed (%s): %s", e.Class, e.Reason)
}

// finish lingers so the other replicas learn the final entries (a leader
// that exits at once can leave a follower without a quorum), then returns
// the outcome — or, with StayAfterDone, keeps serving status until ctx
// ends or a retry reopens a failed job (reopened true).
func (n *Node) finish(ctx context.Context, st consensus.State) (reopened bool, err error) {
	if st.Status == consensus.StatusFailed {
		n.log.Error("job failed", "class", st.FailClass, "reason", st.Error,
			"retry", "unipruning retry "+jobID(st))
	}
	if n.cfg.StayAfterDone {
		n.log.Info("job ended; serving status until stopped", "status", st.Status)
		for {
			select {
			case <-ctx.Done():
				return false, nil
			case <-time.After(200 * time.Millisecond):
			}
			if !n.cfg.Raft.State().Ended() {
				return true, nil
			}
		}
	}
	select {
	case <-ctx.Done():
	case <-time.After(n.cfg.Linger):
	}
	if st.Status == consensus.StatusFailed {
		return false, &JobFailedError{Reason: st.Error, Class: st.FailClass}
	}
	return false, nil
}

func jobID(st consensus.State) string {
	if st.Job == nil {
		return ""
	}
	return st.Job.ID
}

func mustSubject(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

// leadWhileLeader runs the leader's work until it finishes the job or
// leadership is lost (then it returns nil and Run waits again).
func (n *Node) leadWhileLeader(ctx context.Context, lead <-chan bool) error {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for {
			select {
			case v := <-lead:
				if !v {
					n.log.Warn("lost leadership; stopping the step loop")
					cancel()
					return
				}
			case <-lctx.Done():
				return
			}
		}
	}()
	start := time.Now()
	if err := n.cfg.Raft.Barrier(lctx); err != nil {
		return nil
	}
	n.log.Info("leading", "barrier", time.Since(start).Round(time.Millisecond))
	n.cfg.Metrics.Leader.Set(1)
	defer n.cfg.Metrics.Leader.Set(0)
	stop, err := n.serveRegister(lctx)
	if err != nil {
		return err
	}
	defer stop()
	err = n.lead(lctx)
	if lctx.Err() != nil && ctx.Err() == nil {
		return nil // leadership lost: another replica continues
	}
	return err
}

// lead submits the job if needed and runs attempts until the job ends:
// done, or failed by the retry policy (a terminal state in Raft).
func (n *Node) lead(ctx context.Context) error {
	j, err := n.ensureJob(ctx)
	if err != nil || j == nil {
		if job.ClassOf(err) == job.InvalidInput {
			n.fail(ctx, "invalid job: "+err.Error(), job.InvalidInput)
			return nil
		}
		return err
	}
	// Inputs are checked when the job is submitted or reopened by a retry,
	// not again by every new leader of a running job.
	if st := n.cfg.Raft.State(); n.cfg.Check != nil && (st.Status == consensus.StatusSubmitted || st.Assignment.Epoch == 0) {
		if err := n.cfg.Check(j); err != nil {
			n.fail(ctx, "invalid job: "+err.Error(), job.InvalidInput)
			return nil
		}
	}
	policy := newRetryPolicy(n.cfg.MaxFailures)
	reached := n.cfg.Raft.State().Step
	for attempt := 1; ; attempt++ {
		if n.cfg.Raft.State().Ended() {
			return nil
		}
		err := n.attempt(ctx, j, attempt)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err = n.unfence(ctx, err)
		step := n.cfg.Raft.State().Step
		d := policy.next(err, step > reached)
		reached = max(reached, step)
		switch d.act {
		case ended:
			return nil
		case stepDown:
			n.log.Warn("fenced off by a newer epoch or leader in Raft; stepping down", "err", err)
			return nil
		case failJob:
			n.cfg.Metrics.Recoveries.Inc()
			n.log.Error("marking the job failed", "class", d.class, "attempts", attempt, "reason", d.reason)
			n.fail(ctx, d.reason, d.class)
			return nil
		}
		n.cfg.Metrics.Recoveries.Inc()
		n.log.Warn("attempt failed; recovering: new epoch, roll back to the newest intact common checkpoint, replay", "attempt", attempt, "err", err, "retry_in", d.wait)
		n.setStatus(ctx, consensus.StatusRecovering, err.Error())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d.wait):
		}
	}
}

// fail records the job failed (terminal) with its reason and class.
func (n *Node) fail(ctx context.Context, reason string, class job.Class) {
	cmd, err := consensus.NewFailed(consensus.NewID(), reason, class.String())
	if err == nil {
		_, err = n.cfg.Raft.Apply(ctx, cmd)
	}
	if err != nil && ctx.Err() == nil && !errors.Is(err, consensus.ErrTerminal) {
		n.log.Warn("could not record the failure", "reason", reason, "err", err)
	}
}

// ensureJob returns the job in the log, submitting the configured one if
// the log has none. Without either it waits for a submission.
func (n *Node) ensureJob(ctx context.Context) (*job.Job, error) {
	for {
		st := n.cfg.Raft.State()
		if st.Job != nil {
			j, err := job.Parse(st.Job.Spec)
			if err != nil {
				return nil, fmt.Errorf("the job in the log: %w", err)
			}
			return j, nil
		}
		if n.cfg.Job != nil {
			b, _ := json.Marshal(n.cfg.Job)
			cmd, err := consensus.NewSubmitJob("submit/"+n.cfg.Job.ID, consensus.JobSpec{ID: n.cfg.Job.ID, Version: 1, Spec: b})
			if err != nil {
				return nil, err
			}
			if _, err := n.cfg.Raft.Apply(ctx, cmd); err != nil {
				return nil, fmt.Errorf("submitting the job: %w", err)
			}
			n.log.Info("job submitted", "job", n.cfg.Job.ID)
			continue
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (n *Node) setStatus(ctx context.Context, status, msg string) {
	cmd, err := consensus.NewSetStatus(consensus.NewID(), status, msg)
	if err == nil {
		_, err = n.cfg.Raft.Apply(ctx, cmd)
	}
	if err != nil && ctx.Err() == nil && !errors.Is(err, consensus.ErrTerminal) {
		n.log.Warn("could not record status", "status", status, "err", err)
	}
}

// attempt assigns the layers under a new epoch and runs the step loop
// from the newest common checkpoint.
func (n *Node) attempt(ctx context.Context, j *job.Job, attempt int) error {
	parts, err := planFor(j)
	if err != nil {
		return err
	}
	// Shards may hold state from an aborted attempt or a deposed leader's
	// epoch: then every shard is restored (or reset) before replaying.
	reset := attempt > 1 || n.cfg.Raft.State().Step > 0
	ids, err := n.waitForShards(ctx, j.Shards, n.cfg.ShardWait)
	if err != nil {
		return err
	}
	epoch, err := n.assign(ctx, ids, parts)
	if err != nil {
		return err
	}
	n.log.Info("assignment committed", "epoch", epoch, "shards", ids, "attempt", attempt)
	n.cfg.Metrics.Epoch.Set(float64(epoch))
	remotes := make([]shardrpc.API, len(parts))
	for i, p := range parts {
		remotes[i] = n.cfg.Dial(ids[i], p, epoch)
	}
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopWatch := n.alive.watch(ids, func(id string) {
		n.log.Warn("shard lost (heartbeats stopped or it restarted): aborting the epoch", "shard", id, "epoch", epoch)
		cancel()
	})
	defer stopWatch()
	n.setStatus(ctx, consensus.StatusRunning, "")
	n.mu.Lock()
	n.remotes = remotes
	n.mu.Unlock()
	return n.drive(dctx, j, remotes, parts, epoch, reset)
}

func planFor(j *job.Job) ([]nn.Part, error) {
	ck, err := model.Open(j.Spec.Model, j.Spec.Tokenizer)
	if err != nil {
		return nil, job.Invalid(err)
	}
	defer ck.Close()
	parts, err := PlanSpec(ck.Config, j.Shards, j.Spec)
	return parts, job.Invalid(err) // e.g. more shards than layers
}

// drive runs the step loop and, at the end, writes the Γ store.
func (n *Node) drive(ctx context.Context, j *job.Job, remotes []shardrpc.API, parts []nn.Part, epoch uint64, reset bool) error {
	ledger := NewRaftLedger(n.cfg.Raft, epoch)
	d := &Driver{Spec: j.Spec, Shards: remotes, Ledger: ledger, Reset: reset, Log: n.log, OnStep: func(s StepInfo) {
		n.cfg.Metrics.observe(s)
		n.setInfo(func(st *Status) { st.Step, st.LastStepSeconds = s.Step, s.Seconds })
		if n.cfg.OnStep != nil {
			n.cfg.OnStep(s)
		}
	}}
	refs, err := d.Run(ctx)
	if err != nil {
		return err
	}
	if d.Resumed > 0 {
		n.log.Info("resumed", "from_step", d.Resumed, "epoch", epoch)
	}
	results := map[string]string{}
	for i, r := range refs {
		results[fmt.Sprintf("gamma/%d", i)] = r.Key
	}
	if n.cfg.Finish != nil {
		fctx, cancel := context.WithTimeout(ctx, n.cfg.FinishTimeout)
		more, err := n.cfg.Finish(fctx, j.Spec, refs, parts, ledger.Steps())
		cancel()
		if err != nil {
			return fmt.Errorf("writing the Γ store: %w", err)
		}
		for k, v := range more {
			results[k] = v
		}
	}
	keys := make([]string, 0, len(results))
	for k := range results {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd, err := consensus.NewSetResult("result/"+k, k, results[k])
		if err == nil {
			_, err = n.cfg.Raft.Apply(ctx, cmd)
		}
		if err != nil {
			return err
		}
	}
	n.setStatus(ctx, consensus.StatusDone, "")
	n.log.Info("job done", "job", j.ID, "epoch", epoch)
	return nil
}

// assign keeps the previous assignment's shards where they are alive and
// fills the other ranges with alive unassigned members, then commits the
// assignment under the next epoch.
func (n *Node) assign(ctx context.Context, ids []string, parts []nn.Part) (uint64, error) {
	st := n.cfg.Raft.State()
	epoch := max(st.Assignment.Epoch, n.epochFloor) + 1
	a := consensus.Assignment{Epoch: epoch}
	for i, p := range parts {
		a.Ranges = append(a.Ranges, consensus.Range{Shard: ids[i], From: p.From, To: p.To, Embed: p.Embed, Head: p.Head})
	}
	cmd, err := consensus.NewAssign(fmt.Sprintf("assign/e%d", epoch), a)
	if err != nil {
		return 0, err
	}
	_, err = n.cfg.Raft.Apply(ctx, cmd)
	return epoch, err
}

// waitForShards returns k alive registered shard IDs, preferring those of
// the previous assignment in their old positions; it gives up (a transient
// failure) after wait.
func (n *Node) waitForShards(ctx context.Context, k int, wait time.Duration) ([]string, error) {
	logged := false
	deadline := time.Now().Add(wait)
	for {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("fewer than %d live shards registered within %v", k, wait)
		}
		st := n.cfg.Raft.State()
		if ids, ok := n.pick(st, k); ok {
			return ids, nil
		}
		if !logged {
			n.log.Info("waiting for shards to register and send heartbeats", "need", k)
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (n *Node) pick(st consensus.State, k int) ([]string, bool) {
	ids := make([]string, k)
	used := map[string]bool{}
	prev := st.AssignedShards()
	for i := 0; i < k && i < len(prev); i++ {
		if _, reg := st.Members[prev[i]]; reg && n.alive.isAlive(prev[i]) {
			ids[i], used[prev[i]] = prev[i], true
		}
	}
	var spare []string
	for id := range st.Members {
		if !used[id] && n.alive.isAlive(id) {
			spare = append(spare, id)
		}
	}
	sort.Strings(spare)
	for i := range ids {
		if ids[i] != "" {
			continue
		}
		if len(spare) == 0 {
			return nil, false
		}
		ids[i], spare = spare[0], spare[1:]
	}
	return ids, true
}

// serveRegister answers shard registrations (leader only): requests are
// shardrpc.CoordinatorRequest envelopes with method "register".
func (n *Node) serveRegister(ctx context.Context) (func(), error) {
	subj := mustSubject(n.cfg.Subj.Coordinator())
	return transport.HandleJSON(n.cfg.Conn, subj, "", func(ctx context.Context, req shardrpc.CoordinatorRequest) (shardrpc.RegisterResponse, error) {
		if req.Method != "register" {
			return shardrpc.RegisterResponse{}, fmt.Errorf("coordinator: unknown method %q", req.Method)
		}
		var r shardrpc.RegisterRequest
		if err := json.Unmarshal(req.Body, &r); err != nil || r.ID == "" {
			return shardrpc.RegisterResponse{}, errors.New("register: malformed request or empty shard id")
		}
		if c, ok := transport.Caller(ctx); ok && (c.Role != transport.RoleShard || c.ID != r.ID) {
			n.log.Warn("refusing a registration from another identity", "shard", r.ID, "caller", c.Name())
			return shardrpc.RegisterResponse{}, transport.WithCode(transport.CodeUnauthorized,
				fmt.Errorf("register: %s may not register as shard %q", c.Name(), r.ID))
		}
		// A fresh command ID per registration: a restarted shard's new
		// registration must be applied (its log index marks the new
		// incarnation); a retried one is harmless. Raft.Apply refuses an
		// oversize ID or address before proposing (consensus.MaxIDBytes,
		// MaxAddrBytes).
		cmd, err := consensus.NewRegisterMember(consensus.NewID(), r.ID, r.Addr, r.Standby)
		if err != nil {
			return shardrpc.RegisterResponse{}, err
		}
		if _, err := n.cfg.Raft.Apply(ctx, cmd); err != nil {
			return shardrpc.RegisterResponse{}, err
		}
		n.log.Info("shard registered", "shard", r.ID, "addr", r.Addr, "standby", r.Standby)
		return shardrpc.RegisterResponse{OK: true, Message: "registered with " + n.cfg.ID}, nil
	})
}
