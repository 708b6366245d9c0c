package consensus

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/unipruning/unipruning/job"
)

// fsmHarness applies commands at increasing log indices.
type fsmHarness struct {
	t     *testing.T
	f     *FSM
	index uint64
	ids   int
}

func newHarness(t *testing.T) *fsmHarness {
	t.Helper()
	return &fsmHarness{t: t, f: NewFSM()}
}

// id returns a fresh, readable command ID.
func (h *fsmHarness) id() string {
	h.ids++
	return fmt.Sprintf("cmd-%d", h.ids)
}

func (h *fsmHarness) apply(cmd Command, err error) (Result, error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatalf("building command: %v", err)
	}
	h.index++
	return h.f.ApplyCommand(h.index, cmd)
}

func (h *fsmHarness) ok(cmd Command, err error) Result {
	h.t.Helper()
	res, err := h.apply(cmd, err)
	if err != nil {
		h.t.Fatalf("%s: %v", cmd.Type, err)
	}
	return res
}

// reject checks that cmd fails with target and leaves the state unchanged.
// cmd unwraps a constructor's result.
func (h *fsmHarness) cmd(c Command, err error) Command {
	h.t.Helper()
	if err != nil {
		h.t.Fatalf("building command: %v", err)
	}
	return c
}

func (h *fsmHarness) reject(target error, cmd Command) {
	h.t.Helper()
	before := h.f.State()
	_, err := h.apply(cmd, nil)
	if !errors.Is(err, target) {
		h.t.Fatalf("%s: got error %v, want %v", cmd.Type, err, target)
	}
	if after := h.f.State(); !reflect.DeepEqual(before, after) {
		h.t.Fatalf("%s: rejected command changed the state:\nbefore %+v\nafter  %+v", cmd.Type, before, after)
	}
}

const hexA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func testJob(version int, spec string) JobSpec {
	return JobSpec{ID: "job-1", Version: version, Spec: json.RawMessage(spec)}
}

// twoShards is a valid assignment of 8 layers over shards s0 and s1.
func twoShards(epoch uint64) Assignment {
	return Assignment{Epoch: epoch, Ranges: []Range{
		{Shard: "s0", From: 0, To: 4, Embed: true},
		{Shard: "s1", From: 4, To: 8, Head: true},
	}}
}

// setup submits a job, registers s0..s2 and assigns twoShards at epoch 1.
func (h *fsmHarness) setup() {
	h.t.Helper()
	h.ok(NewSubmitJob(h.id(), testJob(1, `{"model":"m"}`)))
	for _, s := range []string{"s0", "s1", "s2"} {
		h.ok(NewRegisterMember(h.id(), s, "nats://"+s, s == "s2"))
	}
	h.ok(NewAssign(h.id(), twoShards(1)))
}

func manifest(step int, shard string) job.Checkpoint {
	layers := [2]int{0, 4}
	if shard == "s1" {
		layers = [2]int{4, 8}
	}
	return job.Checkpoint{Step: step, Shard: shard, Layers: layers, Ref: job.Ref{Key: fmt.Sprintf("ckpt/%d/%s", step, shard), SHA256: hexA, Bytes: 100}}
}

func TestSubmitJob(t *testing.T) {
	h := newHarness(t)
	h.ok(NewSubmitJob(h.id(), testJob(1, `{ "model" : "m" }`)))
	st := h.f.State()
	if st.Status != StatusSubmitted || string(st.Job.Spec) != `{"model":"m"}` || !isHexSHA256(st.Job.SHA256) {
		t.Fatalf("after submit: status %q spec %s sha %q", st.Status, st.Job.Spec, st.Job.SHA256)
	}
	// The same ID and version again (under a new command ID) is a no-op.
	h.ok(NewSubmitJob(h.id(), testJob(1, `{"model":"m"}`)))
	if got := h.f.State(); !reflect.DeepEqual(got, st) {
		t.Fatalf("resubmission changed the state")
	}
	h.reject(ErrConflict, h.cmd(NewSubmitJob(h.id(), testJob(1, `{"model":"other"}`))))
	h.ok(NewSubmitJob(h.id(), testJob(2, `{"model":"v2"}`)))
	if got := h.f.State().Job; got.Version != 2 || string(got.Spec) != `{"model":"v2"}` {
		t.Fatalf("version 2 did not replace: %+v", got)
	}
	h.reject(ErrConflict, h.cmd(NewSubmitJob(h.id(), testJob(1, `{"model":"m"}`))))
	other := testJob(3, `{}`)
	other.ID = "job-2"
	h.reject(ErrInvalid, h.cmd(NewSubmitJob(h.id(), other)))
	for _, bad := range []JobSpec{
		{ID: "", Version: 3, Spec: json.RawMessage(`{}`)},
		{ID: "job-1", Version: 0, Spec: json.RawMessage(`{}`)},
		{ID: "job-1", Version: 3, Spec: json.RawMessage(`{"a":1}`), SHA256: "XYZ"},
	} {
		h.reject(ErrInvalid, h.cmd(NewSubmitJob(h.id(), bad)))
	}
	// Invalid raw JSON cannot even be encoded into a command.
	if _, err := NewSubmitJob(h.id(), testJob(3, `{`)); err == nil {
		t.Fatal("constructor accepted invalid spec JSON")
	}
	h.reject(ErrInvalid, Command{V: 1, ID: h.id(), Type: TypeSubmitJob, Payload: json.RawMessage(`{"job":{"id":"job-1","version":3}}`)})
}

func TestSubmitJobKeepsGivenDigest(t *testing.T) {
	h := newHarness(t)
	j := testJob(1, `{"x":"<&>"}`)
	j.SHA256 = hexA
	h.ok(NewSubmitJob(h.id(), j))
	got := h.f.State().Job
	if got.SHA256 != hexA || string(got.Spec) != `{"x":"<&>"}` {
		t.Fatalf("job stored as %+v (spec %s)", got, got.Spec)
	}
}

func TestMembers(t *testing.T) {
	h := newHarness(t)
	h.setup()
	first := h.f.State().Members["s2"]
	if !first.Standby || first.Addr != "nats://s2" || first.Registered == 0 {
		t.Fatalf("member s2 = %+v", first)
	}
	res := h.ok(NewRegisterMember(h.id(), "s2", "nats://s2b", false))
	if m := h.f.State().Members["s2"]; m.Registered != res.Index || m.Addr != "nats://s2b" || m.Standby {
		t.Fatalf("re-registered s2 = %+v, want Registered %d", m, res.Index)
	}
	h.reject(ErrInvalid, h.cmd(NewRegisterMember(h.id(), "", "addr", false)))
	h.reject(ErrInvalid, h.cmd(NewRegisterMember(h.id(), "s3", "", false)))
	h.reject(ErrInvalid, h.cmd(NewRemoveMember(h.id(), "nobody")))
	h.reject(ErrInvalid, h.cmd(NewRemoveMember(h.id(), "s0"))) // holds layers
	h.ok(NewRemoveMember(h.id(), "s2"))
	if _, ok := h.f.State().Members["s2"]; ok {
		t.Fatal("s2 still a member")
	}
}

func TestAssign(t *testing.T) {
	h := newHarness(t)
	h.setup()
	bad := map[string][]Range{
		"empty":     nil,
		"gap":       {{Shard: "s0", From: 0, To: 4, Embed: true}, {Shard: "s1", From: 5, To: 8, Head: true}},
		"overlap":   {{Shard: "s0", From: 0, To: 4, Embed: true}, {Shard: "s1", From: 3, To: 8, Head: true}},
		"not at 0":  {{Shard: "s0", From: 1, To: 8, Embed: true, Head: true}},
		"empty rng": {{Shard: "s0", From: 0, To: 0, Embed: true}, {Shard: "s1", From: 0, To: 8, Head: true}},
		"unknown":   {{Shard: "s0", From: 0, To: 4, Embed: true}, {Shard: "zz", From: 4, To: 8, Head: true}},
		"twice":     {{Shard: "s0", From: 0, To: 4, Embed: true}, {Shard: "s0", From: 4, To: 8, Head: true}},
		"no shard":  {{Shard: "", From: 0, To: 8, Embed: true, Head: true}},
		"embed":     {{Shard: "s0", From: 0, To: 4}, {Shard: "s1", From: 4, To: 8, Head: true, Embed: true}},
		"head":      {{Shard: "s0", From: 0, To: 4, Embed: true, Head: true}, {Shard: "s1", From: 4, To: 8}},
	}
	for name, rs := range bad {
		t.Run(name, func(t *testing.T) {
			h.t = t
			h.reject(ErrInvalid, h.cmd(NewAssign(h.id(), Assignment{Epoch: 2, Ranges: rs})))
		})
	}
	h.t = t
	h.reject(ErrStaleEpoch, h.cmd(NewAssign(h.id(), twoShards(1))))
	mismatch, _ := NewAssign(h.id(), twoShards(3))
	mismatch.Epoch = 4
	h.reject(ErrInvalid, mismatch)
	zero, _ := NewAssign(h.id(), twoShards(3))
	zero.Epoch = 0
	h.reject(ErrInvalid, zero)
	one := Assignment{Epoch: 5, Ranges: []Range{{Shard: "s2", From: 0, To: 8, Embed: true, Head: true}}}
	h.ok(NewAssign(h.id(), one))
	if got := h.f.State().Assignment; !reflect.DeepEqual(got, one) {
		t.Fatalf("assignment = %+v", got)
	}
}

func TestBeginStep(t *testing.T) {
	h := newHarness(t)
	h.reject(ErrInvalid, h.cmd(NewBeginStep(h.id(), 1, 1, 1e-4, 0))) // no job
	h.ok(NewSubmitJob(h.id(), testJob(1, `{}`)))
	h.reject(ErrInvalid, h.cmd(NewBeginStep(h.id(), 1, 1, 1e-4, 0))) // no assignment
	h.ok(NewRegisterMember(h.id(), "s0", "a", false))
	h.ok(NewRegisterMember(h.id(), "s1", "b", false))
	h.ok(NewAssign(h.id(), twoShards(1)))
	h.reject(ErrInvalid, h.cmd(NewBeginStep(h.id(), 1, 2, 1e-4, 0))) // skips step 1
	h.reject(ErrInvalid, h.cmd(NewBeginStep(h.id(), 1, 0, 1e-4, 0)))
	h.reject(ErrInvalid, h.cmd(NewBeginStep(h.id(), 1, 1, -1, 0)))
	h.reject(ErrInvalid, Command{V: 1, ID: h.id(), Type: TypeBeginStep, Epoch: 1, Payload: json.RawMessage(`{"step":1,"lr":1e999,"sample":0}`)})
	h.reject(ErrInvalid, h.cmd(NewBeginStep(h.id(), 1, 1, 1e-4, -3)))
	for _, v := range []float64{math.NaN(), math.Inf(1)} {
		if _, err := NewBeginStep(h.id(), 1, 1, v, 0); err == nil {
			t.Fatalf("constructor encoded learning rate %v", v)
		}
	}
	h.ok(NewBeginStep(h.id(), 1, 1, 1e-4, 7))
	h.ok(NewBeginStep(h.id(), 1, 2, 2e-4, 9))
	st := h.f.State()
	if st.Step != 2 || st.Steps[1].Sample != 7 || st.Steps[2].LR != 2e-4 {
		t.Fatalf("state after two steps: step %d, facts %+v", st.Step, st.Steps)
	}
}

func TestCommitScalars(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.ok(NewBeginStep(h.id(), 1, 1, 1e-4, 0))
	h.reject(ErrInvalid, h.cmd(NewCommitGradNorm(h.id(), 1, 2, 1))) // not begun
	h.reject(ErrInvalid, h.cmd(NewCommitGradNorm(h.id(), 1, 1, -1)))
	h.reject(ErrInvalid, h.cmd(NewCommitTau(h.id(), 1, 2, 1)))
	if _, err := NewCommitTau(h.id(), 1, 1, math.Inf(1)); err == nil {
		t.Fatal("constructor encoded an infinite τ")
	}
	h.ok(NewCommitGradNorm(h.id(), 1, 1, 0.75))
	h.ok(NewCommitGradNorm(h.id(), 1, 1, 0.75)) // same value again: harmless
	h.reject(ErrConflict, h.cmd(NewCommitGradNorm(h.id(), 1, 1, 0.5)))
	h.ok(NewCommitTau(h.id(), 1, 1, 0.125))
	h.reject(ErrConflict, h.cmd(NewCommitTau(h.id(), 1, 1, 0.25)))
	f := h.f.State().Steps[1]
	if f.GradNorm == nil || *f.GradNorm != 0.75 || f.Tau == nil || *f.Tau != 0.125 {
		t.Fatalf("step facts %+v", f)
	}
}

func TestAckStep(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.ok(NewBeginStep(h.id(), 1, 1, 1e-4, 0))
	h.reject(ErrInvalid, h.cmd(NewAckStep(h.id(), 1, 2, "s0")))
	h.reject(ErrInvalid, h.cmd(NewAckStep(h.id(), 1, 1, "s2"))) // not assigned
	h.ok(NewAckStep(h.id(), 1, 1, "s1"))
	if h.f.State().StepAcked(1) {
		t.Fatal("step acked by one of two shards counts as acked")
	}
	h.ok(NewAckStep(h.id(), 1, 1, "s0"))
	h.ok(NewAckStep(h.id(), 1, 1, "s0"))
	st := h.f.State()
	if !st.StepAcked(1) || !reflect.DeepEqual(st.Steps[1].Done, []string{"s0", "s1"}) {
		t.Fatalf("done = %v, acked %v", st.Steps[1].Done, st.StepAcked(1))
	}
}

func TestEpochFencing(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.ok(NewBeginStep(h.id(), 1, 1, 1e-4, 0))
	h.ok(NewAssign(h.id(), twoShards(2)))
	stale := []func() (Command, error){
		func() (Command, error) { return NewBeginStep(h.id(), 1, 2, 1e-4, 0) },
		func() (Command, error) { return NewCommitGradNorm(h.id(), 1, 1, 1) },
		func() (Command, error) { return NewCommitTau(h.id(), 1, 1, 1) },
		func() (Command, error) { return NewAckStep(h.id(), 1, 1, "s0") },
		func() (Command, error) { return NewRecordCheckpoint(h.id(), 1, manifest(1, "s0")) },
		func() (Command, error) { return NewRollback(h.id(), 1, 0, "stale") },
		func() (Command, error) { return NewAssign(h.id(), twoShards(1)) },
		func() (Command, error) { return NewAssign(h.id(), twoShards(2)) },
	}
	for _, mk := range stale {
		h.reject(ErrStaleEpoch, h.cmd(mk()))
	}
	// An unfenced type with an explicit old epoch is fenced too.
	old, _ := NewSetStatus(h.id(), StatusRunning, "")
	old.Epoch = 1
	h.reject(ErrStaleEpoch, old)
	// A fenced type must carry an epoch.
	h.reject(ErrInvalid, h.cmd(NewAckStep(h.id(), 0, 1, "s0")))
	// Unfenced types without one pass.
	h.ok(NewSetStatus(h.id(), StatusRunning, ""))
	h.ok(NewAckStep(h.id(), 2, 1, "s0"))
}

func TestRecordCheckpoint(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.ok(NewBeginStep(h.id(), 1, 1, 1e-4, 0))
	h.ok(NewRecordCheckpoint(h.id(), 1, manifest(1, "s0")))
	h.ok(NewRecordCheckpoint(h.id(), 1, manifest(1, "s0"))) // identical: harmless
	changed := manifest(1, "s0")
	changed.Key = "elsewhere"
	h.reject(ErrConflict, h.cmd(NewRecordCheckpoint(h.id(), 1, changed)))
	bad := map[string]func(*job.Checkpoint){
		"future step":  func(m *job.Checkpoint) { m.Step = 2 },
		"step 0":       func(m *job.Checkpoint) { m.Step = 0 },
		"unassigned":   func(m *job.Checkpoint) { m.Shard = "s2" },
		"wrong layers": func(m *job.Checkpoint) { m.Layers = [2]int{0, 3} },
		"no key":       func(m *job.Checkpoint) { m.Key = "" },
		"bad sha":      func(m *job.Checkpoint) { m.SHA256 = "abc" },
		"neg bytes":    func(m *job.Checkpoint) { m.Bytes = -1 },
	}
	for name, edit := range bad {
		m := manifest(1, "s1")
		edit(&m)
		t.Run(name, func(t *testing.T) {
			h.t = t
			h.reject(ErrInvalid, h.cmd(NewRecordCheckpoint(h.id(), 1, m)))
		})
	}
	h.t = t
	if got := h.f.State().Checkpoints[1]["s0"]; got != manifest(1, "s0") {
		t.Fatalf("checkpoint = %+v", got)
	}
}

// runSteps begins steps from..to, acking both shards and checkpointing the
// steps in ckpt (s1 only for the steps in partial).
func (h *fsmHarness) runSteps(epoch uint64, from, to int, ckpt, partial map[int]bool) {
	h.t.Helper()
	for k := from; k <= to; k++ {
		h.ok(NewBeginStep(h.id(), epoch, k, 1e-4, k))
		h.ok(NewCommitGradNorm(h.id(), epoch, k, float64(k)))
		h.ok(NewCommitTau(h.id(), epoch, k, 0.5))
		for _, s := range []string{"s0", "s1"} {
			if ckpt[k] || (partial[k] && s == "s1") {
				h.ok(NewRecordCheckpoint(h.id(), epoch, manifest(k, s)))
			}
			h.ok(NewAckStep(h.id(), epoch, k, s))
		}
	}
}

func TestRollback(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.runSteps(1, 1, 6, map[int]bool{2: true, 4: true}, map[int]bool{5: true})
	st := h.f.State()
	if k, ok := st.LatestCommonCheckpoint([]string{"s0", "s1"}); !ok || k != 4 {
		t.Fatalf("latest common checkpoint = %d %v, want 4", k, ok)
	}
	h.ok(NewAssign(h.id(), twoShards(2)))
	h.reject(ErrStaleEpoch, h.cmd(NewRollback(h.id(), 1, 4, "old")))
	h.reject(ErrInvalid, h.cmd(NewRollback(h.id(), 3, 4, "future epoch")))
	h.reject(ErrInvalid, h.cmd(NewRollback(h.id(), 2, 3, "no checkpoint at 3")))
	h.reject(ErrInvalid, h.cmd(NewRollback(h.id(), 2, 7, "beyond step")))
	h.reject(ErrInvalid, h.cmd(NewRollback(h.id(), 2, -1, "negative")))
	mismatch, _ := NewRollback(h.id(), 2, 4, "x")
	mismatch.Payload = json.RawMessage(`{"to_step":4,"epoch":3,"reason":"x"}`)
	h.reject(ErrInvalid, mismatch)

	h.ok(NewRollback(h.id(), 2, 4, "s0 died"))
	st = h.f.State()
	if st.Step != 4 || len(st.Steps) != 4 || len(st.Checkpoints) != 2 {
		t.Fatalf("after rollback: step %d, %d step facts, checkpoints at %v", st.Step, len(st.Steps), st.Checkpoints)
	}
	if _, ok := st.Checkpoints[5]; ok {
		t.Fatal("checkpoint of step 5 survived the rollback")
	}
	want := []RollbackRecord{{FromStep: 6, ToStep: 4, Epoch: 2, Reason: "s0 died"}}
	if !reflect.DeepEqual(st.RolledBack, want) || *st.Steps[4].GradNorm != 4 {
		t.Fatalf("history %+v, step 4 facts %+v", st.RolledBack, st.Steps[4])
	}
	// Replay continues from the rollback point under the new epoch.
	h.runSteps(2, 5, 5, map[int]bool{5: true}, nil)
	h.ok(NewRollback(h.id(), 2, 0, "start over"))
	st = h.f.State()
	if st.Step != 0 || len(st.Steps) != 0 || len(st.Checkpoints) != 0 || len(st.RolledBack) != 2 {
		t.Fatalf("after rollback to 0: %+v", st)
	}
}

func TestLatestCommonCheckpoint(t *testing.T) {
	st := newState()
	if _, ok := st.LatestCommonCheckpoint([]string{"a"}); ok {
		t.Fatal("found a checkpoint in an empty state")
	}
	st.Checkpoints[2] = map[string]job.Checkpoint{"a": {}, "b": {}}
	st.Checkpoints[3] = map[string]job.Checkpoint{"a": {}}
	st.Checkpoints[5] = map[string]job.Checkpoint{"b": {}, "c": {}}
	cases := []struct {
		shards []string
		step   int
		ok     bool
	}{
		{[]string{"a", "b"}, 2, true},
		{[]string{"a"}, 3, true},
		{[]string{"b"}, 5, true},
		{[]string{"b", "c"}, 5, true},
		{[]string{"a", "c"}, 0, false},
		{nil, 0, false},
	}
	for _, c := range cases {
		if step, ok := st.LatestCommonCheckpoint(c.shards); step != c.step || ok != c.ok {
			t.Errorf("LatestCommonCheckpoint(%v) = %d %v, want %d %v", c.shards, step, ok, c.step, c.ok)
		}
	}
}

func TestStatusAndResults(t *testing.T) {
	h := newHarness(t)
	h.ok(NewSubmitJob(h.id(), testJob(1, `{"model":"m"}`)))
	h.reject(ErrInvalid, h.cmd(NewSetStatus(h.id(), "sleeping", "")))
	h.reject(ErrInvalid, h.cmd(NewSetStatus(h.id(), "", "")))
	h.reject(ErrInvalid, h.cmd(NewSetStatus(h.id(), StatusFailed, ""))) // a failure needs its reason
	h.ok(NewSetStatus(h.id(), StatusRecovering, "shard s0 lost"))
	h.ok(NewSetStatus(h.id(), StatusRunning, ""))
	h.reject(ErrInvalid, h.cmd(NewSetResult(h.id(), "", "v")))
	h.ok(NewSetResult(h.id(), "gamma", "blobs/gamma"))
	if got := h.f.State().Results["gamma"]; got != "blobs/gamma" {
		t.Fatalf("result = %q", got)
	}
	h.ok(NewSetStatus(h.id(), StatusDone, ""))
	h.reject(ErrTerminal, h.cmd(NewSetStatus(h.id(), StatusRunning, "")))
	h.reject(ErrTerminal, h.cmd(NewSetResult(h.id(), "gamma", "other")))
	h.reject(ErrInvalid, h.cmd(NewRetryJob(h.id(), "job-1", "")))
}

// TestFailedIsFinal: once failed, every replica refuses any change (no
// leader may resume it on its own) until a RetryJob reopens it; the
// reason and class stay recorded.
func TestFailedIsFinal(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.ok(NewBeginStep(h.id(), 1, 1, 0.1, 0))
	h.ok(NewFailed(h.id(), "calibration file missing", "invalid_input"))
	st := h.f.State()
	if st.Status != StatusFailed || st.Error != "calibration file missing" || st.FailClass != "invalid_input" {
		t.Fatalf("status %q error %q class %q", st.Status, st.Error, st.FailClass)
	}
	for _, c := range []func() (Command, error){
		func() (Command, error) { return NewBeginStep(h.id(), 1, 2, 0.1, 1) },
		func() (Command, error) { return NewAssign(h.id(), twoShards(2)) },
		func() (Command, error) { return NewSetStatus(h.id(), StatusRunning, "") },
		func() (Command, error) { return NewSetStatus(h.id(), StatusDone, "") },
		func() (Command, error) { return NewRegisterMember(h.id(), "s9", "x", false) },
		func() (Command, error) { return NewSubmitJob(h.id(), testJob(2, `{"model":"m2"}`)) },
	} {
		h.reject(ErrTerminal, h.cmd(c()))
	}
	h.reject(ErrInvalid, h.cmd(NewRetryJob(h.id(), "another-job", "")))
	h.ok(NewRetryJob(h.id(), st.Job.ID, "file restored"))
	st = h.f.State()
	if st.Status != StatusSubmitted || st.Error != "" || st.FailClass != "" || st.Retries != 1 || st.Step != 1 {
		t.Fatalf("after retry: status %q error %q class %q retries %d step %d", st.Status, st.Error, st.FailClass, st.Retries, st.Step)
	}
	h.ok(NewAssign(h.id(), twoShards(2)))                           // the job runs again
	h.reject(ErrInvalid, h.cmd(NewRetryJob(h.id(), st.Job.ID, ""))) // not failed now
}

// TestBounds: oversize fields and too many registrations are refused by
// the FSM and never proposed by Node.Apply's pre-check.
func TestBounds(t *testing.T) {
	h := newHarness(t)
	h.setup()
	big := strings.Repeat("x", MaxTextBytes+1)
	h.reject(ErrInvalid, h.cmd(NewRegisterMember(h.id(), strings.Repeat("s", MaxIDBytes+1), "a", false)))
	h.reject(ErrInvalid, h.cmd(NewRegisterMember(h.id(), "s5", strings.Repeat("a", MaxAddrBytes+1), false)))
	h.reject(ErrInvalid, h.cmd(NewSetResult(h.id(), "k", big)))
	h.reject(ErrInvalid, h.cmd(NewRollback(h.id(), 1, 0, big)))
	h.reject(ErrInvalid, h.cmd(NewSubmitJob(h.id(), testJob(2, `{"model":"`+strings.Repeat("m", MaxSpecBytes)+`"}`))))
	h.reject(ErrInvalid, h.cmd(NewCommand(strings.Repeat("i", MaxIDBytes+1), 0, SetResult{Key: "k", Value: "v"})))
	for i := len(h.f.State().Members); i < MaxMembers; i++ {
		h.ok(NewRegisterMember(h.id(), fmt.Sprintf("m%d", i), "addr", false))
	}
	h.reject(ErrInvalid, h.cmd(NewRegisterMember(h.id(), "one-too-many", "addr", false)))
	h.ok(NewRegisterMember(h.id(), "s0", "new-addr", false)) // a known member re-registers
	if n := len(h.f.State().Members); n != MaxMembers {
		t.Fatalf("%d members, want %d", n, MaxMembers)
	}
	// A long error is truncated by its constructor, not refused.
	cmd, err := NewFailed(h.id(), big+big, "transient")
	if err != nil || checkBounds(cmd) != nil {
		t.Fatalf("truncated failure: %v / %v", err, checkBounds(cmd))
	}
}

func TestEnvelope(t *testing.T) {
	h := newHarness(t)
	good, _ := NewSetResult("x", "k", "v")
	for name, c := range map[string]struct {
		edit   func(*Command)
		target error
	}{
		"v0":         {func(c *Command) { c.V = 0 }, ErrUnsupportedVersion},
		"v2":         {func(c *Command) { c.V = 2 }, ErrUnsupportedVersion},
		"no id":      {func(c *Command) { c.ID = "" }, ErrInvalid},
		"type":       {func(c *Command) { c.Type = "Explode" }, ErrUnknownType},
		"field":      {func(c *Command) { c.Payload = json.RawMessage(`{"key":"k","value":"v","x":1}`) }, ErrInvalid},
		"trailing":   {func(c *Command) { c.Payload = json.RawMessage(`{"key":"k"} {}`) }, ErrInvalid},
		"not object": {func(c *Command) { c.Payload = json.RawMessage(`[1]`) }, ErrInvalid},
		"no payload": {func(c *Command) { c.Payload = nil }, ErrInvalid},
	} {
		cmd := good
		cmd.ID = h.id()
		c.edit(&cmd)
		t.Run(name, func(t *testing.T) {
			h.t = t
			h.reject(c.target, cmd)
		})
	}
}

// TestIdempotentReapply applies every command twice under the same ID: the
// second application must return the first result and change nothing, even
// where re-executing it would fail (BeginStep) or differ (RegisterMember).
func TestIdempotentReapply(t *testing.T) {
	h := newHarness(t)
	cmds := []func() (Command, error){
		func() (Command, error) { return NewSubmitJob(h.id(), testJob(1, `{}`)) },
		func() (Command, error) { return NewRegisterMember(h.id(), "s0", "a", false) },
		func() (Command, error) { return NewRegisterMember(h.id(), "s1", "b", false) },
		func() (Command, error) { return NewRegisterMember(h.id(), "s2", "c", false) },
		func() (Command, error) { return NewAssign(h.id(), twoShards(1)) },
		func() (Command, error) { return NewBeginStep(h.id(), 1, 1, 1e-4, 0) },
		func() (Command, error) { return NewCommitGradNorm(h.id(), 1, 1, 2) },
		func() (Command, error) { return NewCommitTau(h.id(), 1, 1, 3) },
		func() (Command, error) { return NewAckStep(h.id(), 1, 1, "s0") },
		func() (Command, error) { return NewRecordCheckpoint(h.id(), 1, manifest(1, "s0")) },
		func() (Command, error) { return NewRecordCheckpoint(h.id(), 1, manifest(1, "s1")) },
		func() (Command, error) { return NewBeginStep(h.id(), 1, 2, 1e-4, 0) },
		func() (Command, error) { return NewRollback(h.id(), 1, 1, "test") },
		func() (Command, error) { return NewRemoveMember(h.id(), "s2") },
		func() (Command, error) { return NewSetStatus(h.id(), StatusRunning, "") },
		func() (Command, error) { return NewSetResult(h.id(), "k", "v") },
	}
	for _, mk := range cmds {
		cmd, err := mk()
		first := h.ok(cmd, err)
		before := h.f.State()
		again := h.ok(cmd, nil)
		if again != first {
			t.Fatalf("%s: re-apply returned %+v, first %+v", cmd.Type, again, first)
		}
		if after := h.f.State(); !reflect.DeepEqual(before, after) {
			t.Fatalf("%s: re-apply changed the state", cmd.Type)
		}
	}
	reused, _ := NewSetResult("cmd-1", "k", "v") // cmd-1 was the SubmitJob
	h.reject(ErrIDReused, reused)
}

func TestDedupWindowForgetsOldest(t *testing.T) {
	h := newHarness(t)
	first, _ := NewSetResult("first", "k", "v")
	h.ok(first, nil)
	for i := range DedupWindow {
		h.ok(NewSetResult(fmt.Sprintf("later-%d", i), "k", "v"))
	}
	if res := h.ok(first, nil); res.Index != h.index {
		t.Fatalf("evicted ID was deduplicated: result %+v", res)
	}
	if len(h.f.order) != DedupWindow || len(h.f.seen) != DedupWindow {
		t.Fatalf("window holds %d/%d IDs, want %d", len(h.f.order), len(h.f.seen), DedupWindow)
	}
}

func TestSnapshotRestore(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.runSteps(1, 1, 3, map[int]bool{2: true}, map[int]bool{3: true})
	h.ok(NewSetResult(h.id(), "gamma", "g"))
	h.ok(NewSetStatus(h.id(), StatusRunning, ""))
	h.ok(NewSubmitJob(h.id(), testJob(2, `{"html":"<b>&</b>"}`)))
	data, err := h.f.MarshalSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	g := NewFSM()
	if err := g.RestoreSnapshot(data); err != nil {
		t.Fatal(err)
	}
	want, got := h.f.State(), g.State()
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("restored state differs:\nwant %+v\ngot  %+v", want, got)
	}
	if !reflect.DeepEqual(h.f.order, g.order) || !reflect.DeepEqual(h.f.seen, g.seen) {
		t.Fatal("restored dedup window differs")
	}
	// A retry of a command from before the snapshot is still recognised.
	res, err := g.ApplyCommand(h.index+1, mustCmd(NewSetResult("cmd-1", "x", "y")))
	if !errors.Is(err, ErrIDReused) || res != (Result{}) {
		t.Fatalf("retry after restore: %+v %v", res, err)
	}
	again, _ := g.ApplyCommand(h.index+1, mustCmd(NewSubmitJob("cmd-1", testJob(1, `{}`))))
	if again.Index != 1 {
		t.Fatalf("retry after restore returned %+v, want index 1", again)
	}
	// Restore replaces, rather than merges into, existing state.
	if err := h.f.RestoreSnapshot(mustSnapshot(t, NewFSM())); err != nil {
		t.Fatal(err)
	}
	if st := h.f.State(); !reflect.DeepEqual(st, newState()) || len(h.f.seen) != 0 {
		t.Fatalf("restore of an empty snapshot left %+v", st)
	}
	for _, bad := range []string{`{`, `{"format":2}`, `{"format":1,"extra":1}`, `{"format":1,"applied":[{"id":""}]}`} {
		if err := g.RestoreSnapshot([]byte(bad)); err == nil {
			t.Errorf("restored bad snapshot %s", bad)
		}
	}
}

func mustCmd(c Command, err error) Command {
	if err != nil {
		panic(err)
	}
	return c
}

func mustSnapshot(t *testing.T, f *FSM) []byte {
	t.Helper()
	data, err := f.MarshalSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestStateIsDeepCopy(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.runSteps(1, 1, 1, map[int]bool{1: true}, nil)
	st := h.f.State()
	st.Job.Spec[0] = 'X'
	st.Members["s0"] = Member{}
	st.Assignment.Ranges[0].Shard = "mut"
	*st.Steps[1].GradNorm = 99
	st.Steps[1].Done[0] = "mut"
	st.Checkpoints[1]["s0"] = job.Checkpoint{}
	st.Results["x"] = "y"
	fresh := h.f.State()
	if string(fresh.Job.Spec) != `{"model":"m"}` || fresh.Members["s0"].ID != "s0" ||
		fresh.Assignment.Ranges[0].Shard != "s0" || *fresh.Steps[1].GradNorm != 1 ||
		fresh.Steps[1].Done[0] != "s0" || fresh.Checkpoints[1]["s0"].Key == "" || len(fresh.Results) != 0 {
		t.Fatalf("mutating a returned State reached the FSM: %+v", fresh)
	}
}

func TestRaftFSMRejectsGarbage(t *testing.T) {
	r := raftFSM{NewFSM()}
	out := r.Apply(&raft.Log{Index: 1, Data: []byte("not json")}).(applyOutcome)
	if !errors.Is(out.err, ErrInvalid) || !strings.Contains(out.err.Error(), "entry 1") {
		t.Fatalf("garbage entry: %v", out.err)
	}
}
