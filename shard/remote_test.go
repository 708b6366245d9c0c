package shard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unipruning/unipruning/coordinator"
	"github.com/unipruning/unipruning/internal/shareddata"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/prune"
	"github.com/unipruning/unipruning/shard"
	"github.com/unipruning/unipruning/shardrpc"
	"github.com/unipruning/unipruning/transport"
)

// storiesSpec is the test search on the real stories260K model (skipped
// when the shared data is absent).
func storiesSpec(t testing.TB, mode string) job.Spec {
	s := job.Spec{
		Model:       shareddata.Path(t, "models/stories260K/stories260K.bin"),
		Tokenizer:   shareddata.Path(t, "models/stories260K/tok512.bin"),
		CalibPath:   shareddata.Path(t, "text/tinystories/TinyStories-train-head-944K.txt"),
		CalibFormat: "lines", Mode: mode, Seqlen: 64, Steps: 6, CheckpointEvery: 2,
	}
	s.Defaults()
	return s
}

func storiesParts(t testing.TB, spec job.Spec, n int) []nn.Part {
	ck, err := model.Open(spec.Model, spec.Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	parts, err := coordinator.Plan(ck.Config, n)
	if err != nil {
		t.Fatal(err)
	}
	return parts
}

func shardIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("shard-%d", i)
	}
	return ids
}

func newBlobs(t testing.TB) (*transport.FSBlobStore, string) {
	dir := t.TempDir()
	b, err := transport.NewFSBlobStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b, dir
}

// runResult is what a search leaves behind: Γ part images in layer order
// and the ledger's per-step facts (loss, ‖g‖, τ).
type runResult struct {
	gammas [][]byte
	steps  map[int]job.StepFacts
}

func drive(ctx context.Context, t testing.TB, spec job.Spec, apis []shardrpc.API, ledger coordinator.Ledger, blobs shardrpc.BlobStore) (runResult, error) {
	d := &coordinator.Driver{Spec: spec, Shards: apis, Ledger: ledger}
	refs, err := d.Run(ctx)
	if err != nil {
		return runResult{}, err
	}
	res := runResult{steps: ledger.Steps()}
	for _, r := range refs {
		b, err := blobs.Get(ctx, r.Key)
		if err != nil {
			t.Fatal(err)
		}
		res.gammas = append(res.gammas, b)
	}
	return res, nil
}

func newLedger(t testing.TB, spec job.Spec) *coordinator.FileLedger {
	l, err := coordinator.OpenFileLedger("", spec.Hash())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// localShards builds in-process shards on channel pipes.
func localShards(t testing.TB, parts []nn.Part, blobs shardrpc.BlobStore) []shardrpc.API {
	chain := shard.LocalChain(parts, blobs)
	apis := make([]shardrpc.API, len(chain))
	for i, l := range chain {
		t.Cleanup(func() { l.Close() })
		apis[i] = l
	}
	return apis
}

func runLocal(t testing.TB, spec job.Spec, parts []nn.Part) runResult {
	blobs, _ := newBlobs(t)
	res, err := drive(testCtx(t, 60*time.Second), t, spec, localShards(t, parts, blobs), newLedger(t, spec), blobs)
	if err != nil {
		t.Fatalf("in-process run: %v", err)
	}
	return res
}

// cluster is shard servers on an embedded NATS server, each on its own
// connection, plus the coordinator's connection and a shared blob store.
type cluster struct {
	ns      *transport.Server
	subj    transport.Subjects
	blobs   *transport.FSBlobStore
	blobDir string
	coord   *transport.Conn
	servers []*shardrpc.Server
}

func newCluster(t testing.TB, n int, opts shardrpc.ServeOptions) *cluster {
	c := &cluster{ns: startNATS(t), subj: transport.Subjects{Job: "test"}}
	c.blobs, c.blobDir = newBlobs(t)
	c.coord = dial(t, c.ns, "coordinator", nil)
	c.startServers(t, n, opts)
	return c
}

// startServers (re)starts n fresh shard servers (new processes: new
// connections, nothing loaded) under the usual IDs.
func (c *cluster) startServers(t testing.TB, n int, opts shardrpc.ServeOptions) {
	for _, s := range c.servers {
		s.Close()
	}
	c.servers = nil
	if opts.Blobs == nil {
		opts.Blobs = c.blobs
	}
	if opts.Load == nil {
		opts.Load = shard.Load
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	for _, id := range shardIDs(n) {
		s, err := shardrpc.Serve(context.Background(), dial(t, c.ns, id, nil), c.subj, id, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		c.servers = append(c.servers, s)
	}
}

// remotes returns clients of the servers at epoch, assigning them their
// parts (in parallel: loading includes tokenizing the calibration text).
func (c *cluster) remotes(t testing.TB, spec job.Spec, parts []nn.Part, epoch uint64, opts shardrpc.CallOptions) []*shardrpc.Remote {
	rs := make([]*shardrpc.Remote, len(parts))
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		rs[i] = shardrpc.NewRemote(c.coord, c.subj, shardIDs(len(parts))[i], p, epoch, opts)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = rs[i].Assign(testCtx(t, 30*time.Second), spec, i, len(parts))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("assign: %v", err)
	}
	return rs
}

func ranges(parts []nn.Part) [][2]int {
	out := make([][2]int, len(parts))
	for i, p := range parts {
		out[i] = [2]int{p.From, p.To}
	}
	return out
}

func apis(rs []*shardrpc.Remote) []shardrpc.API {
	out := make([]shardrpc.API, len(rs))
	for i, r := range rs {
		out[i] = r
	}
	return out
}

func sameResult(t *testing.T, what string, got, want runResult) {
	t.Helper()
	if len(got.gammas) != len(want.gammas) {
		t.Fatalf("%s: %d Γ parts, want %d", what, len(got.gammas), len(want.gammas))
	}
	for i := range got.gammas {
		if !bytes.Equal(got.gammas[i], want.gammas[i]) {
			t.Errorf("%s: Γ part %d differs (%d vs %d bytes)", what, i, len(got.gammas[i]), len(want.gammas[i]))
		}
	}
	if !reflect.DeepEqual(got.steps, want.steps) {
		t.Errorf("%s: ledger step facts differ:\n got %s\nwant %s", what, facts(got.steps), facts(want.steps))
	}
}

func facts(m map[int]job.StepFacts) string {
	b, _ := json.Marshal(m)
	return string(b)
}

// testIdentical runs the same search with 3 in-process shards and with 3
// shard servers over NATS: Γ and every per-step fact (loss, gradient norm,
// τ) must be bitwise equal.
func testIdentical(t *testing.T, mode string) {
	spec := storiesSpec(t, mode)
	parts := storiesParts(t, spec, 3)
	want := runLocal(t, spec, parts)
	c := newCluster(t, 3, shardrpc.ServeOptions{})
	rs := c.remotes(t, spec, parts, 1, shardrpc.CallOptions{})
	got, err := drive(testCtx(t, 60*time.Second), t, spec, apis(rs), newLedger(t, spec), c.blobs)
	if err != nil {
		t.Fatalf("NATS run: %v", err)
	}
	sameResult(t, "NATS vs in-process", got, want)
	for _, s := range c.servers {
		if st := s.Status(); st.Step != spec.Steps || st.Epoch != 1 || !st.Loaded {
			t.Errorf("status after the run: %+v", st)
		}
	}
}

func TestRemoteIdenticalGlobal(t *testing.T)    { testIdentical(t, job.ModeGlobal) }
func TestRemoteIdenticalFrozen(t *testing.T)    { testIdentical(t, job.ModeFrozen) }
func TestRemoteIdenticalReference(t *testing.T) { testIdentical(t, job.ModeReference) }

// failAt makes a ledger refuse to begin step k: the driver stops there, as
// if the coordinator died after the checkpoint of the previous step.
type failAt struct {
	coordinator.Ledger
	k int
}

func (f failAt) BeginStep(ctx context.Context, k int, lr float64) error {
	if k == f.k {
		return fmt.Errorf("injected failure before step %d", k)
	}
	return f.Ledger.BeginStep(ctx, k, lr)
}

// TestRemoteResume: a run stops after the checkpoint of step 2; fresh
// shard servers (new processes) join at a new epoch, are restored from the
// checkpoints over NATS and finish the search: Γ equals an uninterrupted
// in-process run.
func TestRemoteResume(t *testing.T) {
	spec := storiesSpec(t, job.ModeGlobal)
	parts := storiesParts(t, spec, 3)
	want := runLocal(t, spec, parts)
	c := newCluster(t, 3, shardrpc.ServeOptions{})
	ledger := newLedger(t, spec)
	ctx := testCtx(t, 60*time.Second)
	rs := c.remotes(t, spec, parts, 1, shardrpc.CallOptions{})
	if _, err := drive(ctx, t, spec, apis(rs), failAt{ledger, 3}, c.blobs); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("first run: %v (want the injected failure)", err)
	}
	if step, _ := ledger.LatestCommon(ranges(parts)); step != 2 {
		t.Fatalf("latest common checkpoint at step %d, want 2", step)
	}
	c.startServers(t, 3, shardrpc.ServeOptions{})
	rs = c.remotes(t, spec, parts, 2, shardrpc.CallOptions{})
	got, err := drive(ctx, t, spec, apis(rs), ledger, c.blobs)
	if err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	sameResult(t, "resumed over NATS vs uninterrupted", got, want)
}

// TestRemoteRollbackInPlace: the coordinator stops after step 3 (newest
// checkpoint: step 2), bumps the epoch and re-assigns the same live
// servers: they keep their loaded workers, rebuild their pipes on the new
// epoch's subjects, roll back to step 2 and finish with the same Γ.
func TestRemoteRollbackInPlace(t *testing.T) {
	spec := storiesSpec(t, job.ModeGlobal)
	parts := storiesParts(t, spec, 3)
	want := runLocal(t, spec, parts)
	c := newCluster(t, 3, shardrpc.ServeOptions{})
	ledger := newLedger(t, spec)
	ctx := testCtx(t, 60*time.Second)
	rs := c.remotes(t, spec, parts, 1, shardrpc.CallOptions{})
	if _, err := drive(ctx, t, spec, apis(rs), failAt{ledger, 4}, c.blobs); err == nil {
		t.Fatal("first run did not stop")
	}
	rs = c.remotes(t, spec, parts, 2, shardrpc.CallOptions{})
	for _, s := range c.servers {
		if st := s.Status(); st.Epoch != 2 || st.Step != 3 {
			t.Fatalf("after the epoch bump: %+v (want epoch 2, state of step 3 kept)", st)
		}
	}
	got, err := drive(ctx, t, spec, apis(rs), ledger, c.blobs)
	if err != nil {
		t.Fatalf("rolled-back run: %v", err)
	}
	sameResult(t, "rolled back in place vs uninterrupted", got, want)
}

// single starts one server holding the whole model as a 1-stage pipeline.
func single(t *testing.T, opts shardrpc.ServeOptions, copts shardrpc.CallOptions) (*cluster, *shardrpc.Remote, job.Spec) {
	spec := storiesSpec(t, job.ModeGlobal)
	parts := storiesParts(t, spec, 1)
	c := newCluster(t, 1, opts)
	return c, c.remotes(t, spec, parts, 5, copts)[0], spec
}

// TestRemoteFencing: a call with an epoch older than the shard's is
// rejected with code stale_epoch and logged; a newer one needs an assign.
func TestRemoteFencing(t *testing.T) {
	log, buf := captureLogger()
	var loads atomic.Int32
	load := func(spec job.Spec, part nn.Part, pipe shardrpc.Pipe) (shardrpc.Worker, error) {
		loads.Add(1)
		return shard.NewWorker(spec, part, pipe)
	}
	c, r, spec := single(t, shardrpc.ServeOptions{Logger: log, Load: load}, shardrpc.CallOptions{})
	ctx := testCtx(t, 20*time.Second)
	stale := shardrpc.NewRemote(c.coord, c.subj, r.ID(), r.Part(), 4, shardrpc.CallOptions{})
	_, err := stale.Step(ctx, 1)
	if !shardrpc.IsCode(err, shardrpc.CodeStaleEpoch) || !errors.Is(err, shardrpc.ErrStaleEpoch) {
		t.Fatalf("stale step: %v (want code %s)", err, shardrpc.CodeStaleEpoch)
	}
	if !strings.Contains(buf.String(), "stale epoch") {
		t.Errorf("no log line for the fenced call; log:\n%s", buf)
	}
	if _, err := stale.Assign(ctx, spec, 0, 1); !shardrpc.IsCode(err, shardrpc.CodeStaleEpoch) {
		t.Errorf("stale assign: %v", err)
	}
	ahead := shardrpc.NewRemote(c.coord, c.subj, r.ID(), r.Part(), 6, shardrpc.CallOptions{})
	if _, err := ahead.Count(ctx); !shardrpc.IsCode(err, shardrpc.CodeEpochAhead) {
		t.Errorf("count at a newer epoch before assign: %v", err)
	}
	if _, err := r.Step(ctx, 1); err != nil {
		t.Fatalf("step at the current epoch: %v", err)
	}
	// The newer epoch takes over; the old one is fenced from then on.
	if _, err := ahead.Assign(ctx, spec, 0, 1); err != nil {
		t.Fatal(err)
	}
	if err := r.Update(ctx, 1, 1e-4, 1); !shardrpc.IsCode(err, shardrpc.CodeStaleEpoch) {
		t.Errorf("update at the superseded epoch: %v", err)
	}
	if st := c.servers[0].Status(); st.Epoch != 6 || !st.Loaded {
		t.Errorf("status %+v", st)
	}
	if n := loads.Load(); n != 1 {
		t.Errorf("the part was loaded %d times; an epoch change alone must keep the worker", n)
	}
	// Heartbeats carry the new epoch; Close says goodbye at once.
	hb, _ := c.subj.Heartbeat()
	events := make(chan transport.HeartbeatEvent, 8)
	stop, err := transport.WatchHeartbeatEvents(c.coord, hb, 2*time.Second, func(ev transport.HeartbeatEvent) { events <- ev })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if ev := <-events; !ev.Alive || ev.Epoch != 6 || ev.ID != r.ID() {
		t.Errorf("first heartbeat event %+v", ev)
	}
	c.servers[0].Close()
	select {
	case ev := <-events:
		if ev.Alive {
			t.Errorf("event after Close: %+v", ev)
		}
	case <-time.After(time.Second):
		t.Error("no leaving event after Close")
	}
}

// TestRemoteCorruptCheckpoint: a checkpoint whose stored bytes were
// damaged is refused with a checksum error, by the blob store's own check
// and, for a store that does not verify, by the Ref's sha256.
func TestRemoteCorruptCheckpoint(t *testing.T) {
	c, r, _ := single(t, shardrpc.ServeOptions{}, shardrpc.CallOptions{})
	ctx := testCtx(t, 20*time.Second)
	ref, err := r.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(ctx, ref); err != nil {
		t.Fatalf("restore of an intact checkpoint: %v", err)
	}
	path := filepath.Join(c.blobDir, ref.Key[:2], ref.Key)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	err = r.Restore(ctx, ref)
	if !shardrpc.IsCode(err, shardrpc.CodeChecksum) || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("restore of a corrupt blob: %v (want a checksum error)", err)
	}
	t.Logf("corrupt blob: %v", err)
	// The failed restore left the state alone; an empty Ref resets it.
	if _, err := r.Step(ctx, 1); err != nil {
		t.Fatalf("step after a refused restore: %v", err)
	}
	if err := r.Restore(ctx, job.Ref{}); err != nil {
		t.Fatalf("reset: %v", err)
	}
	if st, err := r.Status(ctx); err != nil || st.Step != 0 {
		t.Fatalf("status after reset: %+v, %v", st, err)
	}

	// A store that hands back damaged bytes without noticing.
	mem := &looseStore{m: map[string][]byte{}}
	c.startServers(t, 1, shardrpc.ServeOptions{Blobs: mem})
	spec := storiesSpec(t, job.ModeGlobal)
	r = c.remotes(t, spec, storiesParts(t, spec, 1), 1, shardrpc.CallOptions{})[0]
	if ref, err = r.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	mem.m[ref.Key][len(mem.m[ref.Key])/3] ^= 1
	if err = r.Restore(ctx, ref); !shardrpc.IsCode(err, shardrpc.CodeChecksum) || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("restore of bytes not matching the Ref: %v", err)
	}
	t.Logf("Ref mismatch: %v", err)
}

// looseStore is a blob store without verification.
type looseStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *looseStore) Put(ctx context.Context, b []byte) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := transport.BlobKey(b)
	s.m[k] = append([]byte(nil), b...)
	return k, nil
}

func (s *looseStore) Get(ctx context.Context, k string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[k]
	if !ok {
		return nil, transport.ErrNotFound
	}
	return append([]byte(nil), b...), nil
}

// TestRemoteDuplicateStep: a request repeated with the same ID (a
// transport retry after a timeout, or a replay) is answered from the
// server's record; the step runs once.
func TestRemoteDuplicateStep(t *testing.T) {
	var steps, updates atomic.Int32
	slow := atomic.Bool{}
	slow.Store(true)
	hook := func(m string) {
		switch m {
		case shardrpc.MethodStep:
			steps.Add(1)
			if slow.Swap(false) {
				time.Sleep(700 * time.Millisecond) // longer than the first attempt's timeout
			}
		case shardrpc.MethodUpdate:
			updates.Add(1)
		}
	}
	log, buf := captureLogger()
	c, r, _ := single(t, shardrpc.ServeOptions{BeforeCall: hook, Logger: log},
		shardrpc.CallOptions{Long: 400 * time.Millisecond, Retries: 3, Backoff: 10 * time.Millisecond})
	ctx := testCtx(t, 20*time.Second)
	res, err := r.Step(ctx, 1)
	if err != nil {
		t.Fatalf("step with a retried first attempt: %v", err)
	}
	if n := steps.Load(); n != 1 {
		t.Fatalf("step ran %d times, want 1", n)
	}
	if st := r.Stats()[shardrpc.MethodStep]; st.Calls != 1 || st.Errors != 0 {
		t.Errorf("remote stats %+v", st)
	}
	if !strings.Contains(buf.String(), "repeated request answered from the record") {
		t.Errorf("the retry was not answered from the record; log:\n%s", buf)
	}

	// The same envelope twice, by hand.
	ctl, _ := c.subj.Control(r.ID())
	call := func(method, id string, body any) ([]byte, error) {
		b, _ := json.Marshal(body)
		env, _ := json.Marshal(shardrpc.Envelope{Method: method, ID: id, Epoch: r.Epoch(), Body: b})
		return c.coord.Call(ctx, ctl, env, transport.CallOptions{Timeout: 10 * time.Second})
	}
	a, err1 := call(shardrpc.MethodStep, "dup-1", shardrpc.StepRequest{K: 1})
	b, err2 := call(shardrpc.MethodStep, "dup-1", shardrpc.StepRequest{K: 1})
	if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
		t.Fatalf("duplicate step replies differ: %s / %s (%v, %v)", a, b, err1, err2)
	}
	var rep shardrpc.StepReply
	if err := json.Unmarshal(a, &rep); err != nil || float64(rep.Loss) != res.Loss || rep.Count != res.Count {
		t.Errorf("repeated step reply %s, first result %+v", a, res)
	}
	if n := steps.Load(); n != 1 {
		t.Fatalf("step ran %d times after duplicates, want 1", n)
	}
	up := shardrpc.UpdateRequest{K: 1, LR: 1e-5, Clip: 1}
	for range 2 {
		if _, err := call(shardrpc.MethodUpdate, "dup-u", up); err != nil {
			t.Fatal(err)
		}
	}
	if n := updates.Load(); n != 1 {
		t.Fatalf("update ran %d times, want 1", n)
	}
	up.LR = 2e-5
	if _, err := call(shardrpc.MethodUpdate, "other", up); !shardrpc.IsCode(err, shardrpc.CodeConflict) {
		t.Fatalf("update of the same step with another lr: %v (want code conflict)", err)
	}
}

// TestRemotePreempt: an assign to a newer epoch aborts a step blocked on
// a neighbour that never comes (stage 1 of 2 without stage 0).
func TestRemotePreempt(t *testing.T) {
	spec := storiesSpec(t, job.ModeGlobal)
	parts := storiesParts(t, spec, 2)
	c := newCluster(t, 2, shardrpc.ServeOptions{})
	rs := c.remotes(t, spec, parts, 1, shardrpc.CallOptions{})
	ctx := testCtx(t, 20*time.Second)
	errc := make(chan error, 1)
	go func() {
		_, err := rs[1].Step(ctx, 1)
		errc <- err
	}()
	for c.servers[1].Status().Running != shardrpc.MethodStep {
		if ctx.Err() != nil {
			t.Fatalf("step never started: %+v", c.servers[1].Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The status RPC bypasses the operation lock the blocked step holds.
	if st, err := rs[1].Status(ctx); err != nil || st.Running != shardrpc.MethodStep || st.Epoch != 1 {
		t.Fatalf("status RPC while blocked: %+v, %v", st, err)
	}
	// An old-epoch call queued behind the step must not run after it either.
	queued := make(chan error, 1)
	go func() {
		_, err := rs[1].Count(ctx)
		queued <- err
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	next := shardrpc.NewRemote(c.coord, c.subj, rs[1].ID(), parts[1], 2, shardrpc.CallOptions{})
	if _, err := next.Assign(ctx, spec, 1, 2); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("assign waited %v for the blocked step", d)
	}
	if err := <-errc; err == nil {
		t.Error("blocked step of the old epoch succeeded")
	}
	if err := <-queued; !shardrpc.IsCode(err, shardrpc.CodeStaleEpoch) {
		t.Errorf("queued old-epoch call: %v (want stale_epoch)", err)
	}
}

// TestRegister retries until a coordinator answers, and reports a refusal.
func TestRegister(t *testing.T) {
	ns := startNATS(t)
	subj := transport.Subjects{Job: "reg"}
	conn := dial(t, ns, "shard", nil)
	coord, _ := subj.Coordinator()
	var got atomic.Value
	go func() {
		time.Sleep(300 * time.Millisecond) // the shard starts before the coordinator
		_, _ = transport.HandleJSON(dial(t, ns, "coord", nil), coord, "",
			func(ctx context.Context, req shardrpc.CoordinatorRequest) (shardrpc.RegisterResponse, error) {
				var r shardrpc.RegisterRequest
				if err := json.Unmarshal(req.Body, &r); err != nil || req.Method != "register" {
					return shardrpc.RegisterResponse{}, fmt.Errorf("bad request %+v", req)
				}
				got.Store(r)
				return shardrpc.RegisterResponse{OK: r.ID != "dup", Message: "duplicate id"}, nil
			})
	}()
	ctx := testCtx(t, 10*time.Second)
	if err := shardrpc.Register(ctx, conn, subj, "s1", "host:1"); err != nil {
		t.Fatal(err)
	}
	if r, _ := got.Load().(shardrpc.RegisterRequest); r.ID != "s1" || r.Addr != "host:1" {
		t.Errorf("coordinator saw %+v", r)
	}
	if err := shardrpc.Register(ctx, conn, subj, "dup", "host:2"); err == nil || !strings.Contains(err.Error(), "duplicate id") {
		t.Errorf("refused registration: %v", err)
	}
}

// TestWireFormats: histograms and floats survive the wire exactly.
func TestWireFormats(t *testing.T) {
	h := make([]uint64, prune.HistBuckets)
	for i := range h {
		if i%97 == 0 {
			h[i] = uint64(i) * 0x10001
		}
	}
	b, err := shardrpc.EncodeHistogram(nil, h)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]uint64, prune.HistBuckets)
	if err := shardrpc.DecodeHistogram(b, got); err != nil || !reflect.DeepEqual(got, h) {
		t.Fatalf("histogram round trip: %v", err)
	}
	t.Logf("histogram with %d non-zero buckets: %d bytes on the wire", prune.HistBuckets/97+1, len(b))
	if err := shardrpc.DecodeHistogram(b[:len(b)/2], got); err == nil {
		t.Error("truncated histogram accepted")
	}
	for _, v := range []float64{0, math.Copysign(0, -1), 1e-310, math.Pi, -math.MaxFloat64, math.Inf(1), math.Inf(-1)} {
		bs, err := json.Marshal(shardrpc.WireFloat(v))
		var back shardrpc.WireFloat
		if err == nil {
			err = json.Unmarshal(bs, &back)
		}
		if err != nil || math.Float64bits(float64(back)) != math.Float64bits(v) {
			t.Errorf("WireFloat %v → %s → %v (%v)", v, bs, back, err)
		}
	}
	bs, _ := json.Marshal(shardrpc.WireFloat(math.NaN()))
	var back shardrpc.WireFloat
	if err := json.Unmarshal(bs, &back); err != nil || !math.IsNaN(float64(back)) {
		t.Errorf("NaN → %s → %v (%v)", bs, back, err)
	}
}
