package coordinator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/unipruning/unipruning/consensus"
	"github.com/unipruning/unipruning/internal/testnats"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/model/synth"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/shardrpc"
	"github.com/unipruning/unipruning/transport"
)

// testSpec is a global-mode search of 8 steps with a checkpoint every 2
// on a 4-layer random model (planning reads its config; the fake shards
// compute nothing).
func testSpec(t *testing.T) job.Spec {
	t.Helper()
	c := &model.Config{Arch: "LlamaForCausalLM", Dim: 16, Hidden: 32, Layers: 4, Heads: 2, KVHeads: 2, HeadDim: 8,
		Vocab: 32, MaxSeq: 16, NormEps: 1e-5, RopeTheta: 10000, TiedHead: true, DType: "F32", BOS: 1, EOS: 2}
	dir := t.TempDir()
	if err := model.SaveHF(dir, c, synth.Tensors(c, 1), 0); err != nil {
		t.Fatal(err)
	}
	s := job.Spec{Model: dir, CalibPath: "unused.txt", CalibFormat: "lines", Seqlen: 8, Steps: 8, CheckpointEvery: 2, Lambda: 0.25}
	s.Defaults()
	return s
}

var twoParts = []nn.Part{{From: 0, To: 2, Embed: true}, {From: 2, To: 4, Head: true}}

func fakes(w *world, parts []nn.Part) []shardrpc.API {
	out := make([]shardrpc.API, len(parts))
	for i, p := range parts {
		out[i] = w.dial(fmt.Sprintf("s%d", i), p, 1)
	}
	return out
}

// TestDriverStepLoop: every shard is assigned, then each step runs step,
// update, apply_tau in order on every shard; the leader's facts are exact
// (the lr schedule, the loss per prediction, the gradient norm summed in
// layer order, the λ-quantile of all |z|); checkpoints follow every C steps
// but the last; the Γ parts come back in layer order.
func TestDriverStepLoop(t *testing.T) {
	spec := testSpec(t)
	w := newWorld()
	ledger, _ := OpenFileLedger("", spec.Hash())
	var infos []StepInfo
	d := &Driver{Spec: spec, Shards: fakes(w, twoParts), Ledger: ledger, OnStep: func(s StepInfo) { infos = append(infos, s) }}
	refs, err := d.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"s0", "s1"} {
		var seq []string
		for _, c := range w.calls {
			if f := splitCall(c); f[0] == id && f[1] != "checkpoint" {
				seq = append(seq, f[1]+" "+f[2])
			}
		}
		want := []string{"assign 1"}
		for k := 1; k <= spec.Steps; k++ {
			want = append(want, fmt.Sprintf("step %d", k), fmt.Sprintf("update %d", k), fmt.Sprintf("apply_tau %d", k))
		}
		if !slices.Equal(seq, want) {
			t.Fatalf("%s calls %v\nwant %v", id, seq, want)
		}
		if got := steps(w.callsOf(id, "checkpoint")); !slices.Equal(got, []int{2, 4, 6}) {
			t.Fatalf("%s checkpoints after steps %v, want 2 4 6", id, got)
		}
	}
	sched := nn.WarmupFor(spec.LR, spec.Steps)
	facts := ledger.Steps()
	for k := 1; k <= spec.Steps; k++ {
		f := facts[k]
		// |z| = 1..32 over both shards; k = round(0.25·32) = 8: τ = 8.
		if f.LR != sched.LR(k-1) || *f.Loss != float64(10*k)/4 || *f.GradNorm != math.Sqrt(1+2+3+4) || *f.Tau != 8 {
			t.Fatalf("step %d facts: lr %v loss %v norm %v tau %v", k, f.LR, *f.Loss, *f.GradNorm, *f.Tau)
		}
		if infos[k-1].Step != k || infos[k-1].Tau != 8 {
			t.Fatalf("step info %+v", infos[k-1])
		}
	}
	want := []string{"gamma layers [0,2) step 8", "gamma layers [2,4) step 8"}
	if got := w.gammaImages(refs); !slices.Equal(got, want) {
		t.Fatalf("Γ parts %v", got)
	}
}

// failBefore makes a ledger refuse to begin step k, as if the leader died
// after the checkpoint of an earlier step.
type failBefore struct {
	Ledger
	k int
}

func (f failBefore) BeginStep(ctx context.Context, k int, lr float64) error {
	if k == f.k {
		return fmt.Errorf("injected failure before step %d", k)
	}
	return f.Ledger.BeginStep(ctx, k, lr)
}

// TestDriverResume: a run stopped before step 6 resumes from the newest
// step every range checkpointed (4): the ledger forgets steps 5.., every
// shard is restored from its range's step-4 checkpoint (even under a new
// shard name), and steps 5..8 are replayed.
func TestDriverResume(t *testing.T) {
	spec := testSpec(t)
	w := newWorld()
	ledger, _ := OpenFileLedger("", spec.Hash())
	d := &Driver{Spec: spec, Shards: fakes(w, twoParts), Ledger: failBefore{ledger, 6}}
	if _, err := d.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("first run: %v", err)
	}
	// A replacement process takes over [2,4) under another name.
	shards := []shardrpc.API{w.dial("s0", twoParts[0], 2), w.dial("spare", twoParts[1], 2)}
	d = &Driver{Spec: spec, Shards: shards, Ledger: ledger}
	refs, err := d.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d.Resumed != 4 {
		t.Fatalf("resumed from step %d, want 4", d.Resumed)
	}
	for _, id := range []string{"s0", "spare"} {
		if got := steps(w.callsOf(id, "restore")); !slices.Equal(got, []int{4}) {
			t.Fatalf("%s restored to steps %v, want 4", id, got)
		}
	}
	if got := steps(w.callsOf("spare", "step")); !slices.Equal(got, []int{5, 6, 7, 8}) {
		t.Fatalf("the replacement ran steps %v, want 5..8", got)
	}
	if _, ok := ledger.Steps()[5]; !ok || len(ledger.Steps()) != 8 {
		t.Fatalf("ledger steps after the resumed run: %d", len(ledger.Steps()))
	}
	want := []string{"gamma layers [0,2) step 8", "gamma layers [2,4) step 8"}
	if got := w.gammaImages(refs); !slices.Equal(got, want) {
		t.Fatalf("Γ parts %v", got)
	}
}

// TestRetryPolicy: Raft fencing steps down at once; input and permanent
// errors fail at once; transient errors recover with a per-cause doubling
// backoff until one cause recurs max times, or 4·max failures happen,
// without progress. Causes ignore volatile tokens (request IDs, steps).
func TestRetryPolicy(t *testing.T) {
	fenced := []error{
		fmt.Errorf("commit: %w", consensus.ErrStaleEpoch),
		fmt.Errorf("apply: %w", &consensus.NotLeaderError{LeaderID: "c2"}),
	}
	for _, err := range fenced {
		if d := newRetryPolicy(5).next(err, false); d.act != stepDown {
			t.Errorf("%v: %v, want step down", err, d.act)
		}
	}
	final := map[error]job.Class{
		fmt.Errorf("shard s0: assign: %w", job.Invalidf("calibration text: open c.txt: no such file")): job.InvalidInput,
		job.Permanentf("Γ store inconsistent"):                                                         job.Permanent,
	}
	for err, class := range final {
		if d := newRetryPolicy(5).next(err, false); d.act != failJob || d.class != class || !strings.Contains(d.reason, err.Error()) {
			t.Errorf("%v: %+v, want fail (%v) at once", err, d, class)
		}
	}
	p := newRetryPolicy(3)
	p.limit = 700 * time.Millisecond
	a1 := errors.New("shard s0: step 5: call (request 8j4YHsMdm6) failed: connection lost")
	a2 := errors.New("shard s0: step 5: call (request Zq0xKcv7Pp) failed: connection lost")
	b := errors.New("shard s1: no heartbeat")
	want := []struct {
		err        error
		progressed bool
		act        action
		wait       time.Duration
	}{
		{a1, false, recoverJob, 200 * time.Millisecond},
		{b, false, recoverJob, 200 * time.Millisecond},  // another cause has its own backoff
		{a2, false, recoverJob, 400 * time.Millisecond}, // a1 again, under a fresh request ID
		{b, true, recoverJob, 200 * time.Millisecond},   // progress forgets every count
		{b, false, recoverJob, 400 * time.Millisecond},
		{b, false, failJob, 0},
	}
	for i, w := range want {
		d := p.next(w.err, w.progressed)
		if d.act != w.act || (d.act == recoverJob && d.wait != w.wait) {
			t.Fatalf("attempt %d (%v): %v after %v, want %v after %v", i+1, w.err, d.act, d.wait, w.act, w.wait)
		}
	}
	q := newRetryPolicy(10)
	q.limit = 700 * time.Millisecond
	var last time.Duration
	for range 5 {
		last = q.next(a1, false).wait
	}
	if last != 700*time.Millisecond {
		t.Fatalf("backoff %v, want the 700ms cap", last)
	}
	// Many different causes without progress end too.
	r := newRetryPolicy(2)
	var d decision
	for i := range 8 {
		d = r.next(fmt.Errorf("cause %c", 'a'+i), false)
	}
	if d.act != failJob || !strings.Contains(d.reason, "8 attempts without progress") {
		t.Fatalf("after 8 distinct failures: %+v", d)
	}
}

// cluster is one coordinator replica (single-node Raft) on an embedded
// NATS server, with fake shard processes that register and send
// heartbeats.
type cluster struct {
	raftCfg consensus.Config
	raft    *consensus.Node
	conn    *transport.Conn
	subj    transport.Subjects
	world   *world
	node    *Node
	mu      sync.Mutex
	done    []job.Ref
	calls   int
}

func newCluster(t *testing.T, spec job.Spec, shards, maxFailures int) *cluster {
	t.Helper()
	ns := testnats.Start(t)
	c := &cluster{conn: testnats.Dial(t, ns, "coordinator", nil), subj: transport.Subjects{Job: "nodetest"}, world: newWorld()}
	var err error
	c.raftCfg = consensus.Config{NodeID: "c1", BindAddr: "127.0.0.1:0", DataDir: t.TempDir(), Bootstrap: true,
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 150 * time.Millisecond,
		Logger: testnats.Quiet()}
	c.raft, err = consensus.Open(c.raftCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.raft.Shutdown() })
	for i := range shards {
		id := fmt.Sprintf("s%d", i)
		hb, _ := c.subj.HeartbeatOf(id)
		conn := testnats.Dial(t, ns, id, nil)
		t.Cleanup(transport.StartHeartbeat(conn, hb, id, func() uint64 { return 0 }, 50*time.Millisecond))
		go shardrpc.Register(testnats.Ctx(t, 30*time.Second), conn, c.subj, id, "test")
	}
	c.node = NewNode(NodeConfig{ID: "c1", Raft: c.raft, Conn: c.conn, Subj: c.subj,
		Job: &job.Job{ID: "j", Spec: spec, Shards: shards}, Dial: c.world.dial,
		HeartbeatTimeout: 500 * time.Millisecond, MaxFailures: maxFailures, Linger: time.Millisecond,
		Log: testnats.Quiet(),
		Finish: func(ctx context.Context, s job.Spec, refs []job.Ref, parts []nn.Part, steps map[int]job.StepFacts) (map[string]string, error) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.calls++
			c.done = refs
			if len(steps) != s.Steps || len(parts) != len(refs) {
				return nil, fmt.Errorf("finish got %d steps and %d parts for %d refs", len(steps), len(parts), len(refs))
			}
			return map[string]string{"gamma_manifest": "m"}, nil
		}})
	return c
}

func (c *cluster) run(t *testing.T) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return c.node.Run(ctx)
}

// TestNodeRunsJob: the replica submits its job, waits for the shards to
// register and beat, commits an assignment, drives every step through
// Raft, records checkpoints and the results, and ends the job done.
func TestNodeRunsJob(t *testing.T) {
	spec := testSpec(t)
	c := newCluster(t, spec, 2, 3)
	if err := c.run(t); err != nil {
		t.Fatal(err)
	}
	st := c.raft.State()
	if st.Status != consensus.StatusDone || st.Assignment.Epoch != 1 || len(st.Steps) != spec.Steps || len(st.RolledBack) != 0 {
		t.Fatalf("state: status %q epoch %d steps %d rollbacks %v", st.Status, st.Assignment.Epoch, len(st.Steps), st.RolledBack)
	}
	for _, k := range []int{2, 4, 6} {
		if len(st.Checkpoints[k]) != 2 {
			t.Fatalf("checkpoints of step %d: %v", k, st.Checkpoints[k])
		}
	}
	if st.Steps[8].Tau == nil || *st.Steps[8].Tau != 8 {
		t.Fatalf("step 8 facts %+v", st.Steps[8])
	}
	if c.calls != 1 || st.Results["gamma_manifest"] != "m" || st.Results["gamma/0"] != c.done[0].Key || st.Results["gamma/1"] != c.done[1].Key {
		t.Fatalf("finish called %d times; results %v", c.calls, st.Results)
	}
	want := []string{"gamma layers [0,2) step 8", "gamma layers [2,4) step 8"}
	if got := c.world.gammaImages(c.done); !slices.Equal(got, want) {
		t.Fatalf("Γ parts %v", got)
	}
	if got := counterValue(t, c.node.cfg.Metrics.Steps); got != 8 {
		t.Fatalf("steps metric %v", got)
	}
}

// TestNodeRecovers: a shard's step fails once; the replica records the job
// recovering, moves to a new epoch, rolls every shard back to the newest
// common checkpoint (step 4) and replays to the same end.
func TestNodeRecovers(t *testing.T) {
	spec := testSpec(t)
	c := newCluster(t, spec, 2, 3)
	var once sync.Once
	c.world.onStep = func(id string, k int) (err error) {
		if id == "s1" && k == 5 {
			once.Do(func() { err = errors.New("injected: connection reset") })
		}
		return err
	}
	if err := c.run(t); err != nil {
		t.Fatal(err)
	}
	st := c.raft.State()
	if st.Status != consensus.StatusDone || st.Assignment.Epoch != 2 {
		t.Fatalf("status %q at epoch %d, want done at epoch 2", st.Status, st.Assignment.Epoch)
	}
	if len(st.RolledBack) != 1 || st.RolledBack[0].ToStep != 4 || st.RolledBack[0].Epoch != 2 {
		t.Fatalf("rollbacks %+v, want one to step 4 under epoch 2", st.RolledBack)
	}
	for _, id := range []string{"s0", "s1"} {
		if got := steps(c.world.callsOf(id, "restore")); !slices.Equal(got, []int{4}) {
			t.Fatalf("%s restores %v, want one to step 4", id, got)
		}
		if got := steps(c.world.callsOf(id, "assign")); !slices.Equal(got, []int{1, 2}) {
			t.Fatalf("%s assigned at epochs %v, want 1 and 2", id, got)
		}
	}
	if got := counterValue(t, c.node.cfg.Metrics.Recoveries); got != 1 {
		t.Fatalf("recoveries metric %v", got)
	}
	want := []string{"gamma layers [0,2) step 8", "gamma layers [2,4) step 8"}
	if got := c.world.gammaImages(c.done); !slices.Equal(got, want) {
		t.Fatalf("Γ parts %v", got)
	}
}

// TestNodeFailsOnRecurringError: the same failure at every attempt marks
// the job failed after MaxFailures attempts, with the error in the state,
// and the replica's Run reports it.
func TestNodeFailsOnRecurringError(t *testing.T) {
	spec := testSpec(t)
	c := newCluster(t, spec, 2, 2)
	c.world.onStep = func(id string, k int) error {
		if k == 3 {
			return errors.New("injected: disk full")
		}
		return nil
	}
	err := c.run(t)
	if err == nil || !strings.Contains(err.Error(), "job failed") || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Run: %v", err)
	}
	st := c.raft.State()
	if st.Status != consensus.StatusFailed || !strings.Contains(st.Error, "disk full") || st.Assignment.Epoch != 2 {
		t.Fatalf("state: %q %q epoch %d", st.Status, st.Error, st.Assignment.Epoch)
	}
	if c.calls != 0 {
		t.Fatal("a failed job was finished")
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
