package shard_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/shardrpc"
	"github.com/unipruning/unipruning/transport"
)

// TestMalformedControlDoesNotMoveFence (issue 12 class 5): forged or
// malformed control messages — a huge epoch with a body that is not an
// assign, a part that does not fit, an invalid spec, epoch 0 — are
// refused before any state changes: the shard keeps its epoch and serves
// the legitimate caller.
func TestMalformedControlDoesNotMoveFence(t *testing.T) {
	c, r, spec := single(t, shardrpc.ServeOptions{}, shardrpc.CallOptions{})
	ctx := testCtx(t, 20*time.Second)
	ctl, _ := c.subj.Control(r.ID())
	badSpec := spec
	badSpec.CalibFormat = "xml"
	assign := func(a shardrpc.AssignRequest) json.RawMessage {
		b, _ := json.Marshal(a)
		return b
	}
	forged := []shardrpc.Envelope{
		{Method: shardrpc.MethodAssign, Epoch: 999999, Body: json.RawMessage(`"not an assign"`)},
		{Method: shardrpc.MethodAssign, Epoch: 999999, Body: assign(shardrpc.AssignRequest{Spec: spec, Part: r.Part(), Stage: 1, Stages: 1})},
		{Method: shardrpc.MethodAssign, Epoch: 999999, Body: assign(shardrpc.AssignRequest{Spec: badSpec, Part: r.Part(), Stage: 0, Stages: 1})},
		{Method: shardrpc.MethodStep, Epoch: 5, Body: json.RawMessage(`{"k":"one"}`)},
		{Method: shardrpc.MethodStep, Epoch: 0, Body: json.RawMessage(`{"k":1}`)},
	}
	for i, env := range forged {
		env.ID = "forged-" + string(rune('a'+i))
		b, _ := json.Marshal(env)
		_, err := c.coord.Call(ctx, ctl, b, transport.CallOptions{Timeout: 5 * time.Second})
		if err == nil {
			t.Fatalf("forged message %d accepted", i)
		}
		if st := c.servers[0].Status(); st.Epoch != 5 {
			t.Fatalf("forged message %d moved the shard to epoch %d: %v", i, st.Epoch, err)
		}
	}
	// The legitimate caller is not fenced.
	if _, err := r.Step(ctx, 1); err != nil {
		t.Fatalf("step at the real epoch after forged messages: %v", err)
	}
}

// blockingStore never answers a Get, whatever its context says: the
// object-store read that hung a cancelled restore (issue 12 class 4).
type blockingStore struct {
	looseStore
	release chan struct{}
}

func (s *blockingStore) Get(ctx context.Context, k string) ([]byte, error) {
	<-s.release
	return nil, transport.ErrNotFound
}

// TestRestoreHonoursDeadline: a restore whose blob read hangs returns when
// its caller's deadline passes, and the shard serves the next call at once
// instead of queueing it behind the hung read.
func TestRestoreHonoursDeadline(t *testing.T) {
	store := &blockingStore{looseStore: looseStore{m: map[string][]byte{}}, release: make(chan struct{})}
	t.Cleanup(func() { close(store.release) })
	c, r, _ := single(t, shardrpc.ServeOptions{Blobs: store}, shardrpc.CallOptions{Long: 2 * time.Second, Retries: -1})
	ctx := testCtx(t, 20*time.Second)
	ref, err := r.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = r.Restore(ctx, ref)
	if err == nil {
		t.Fatal("restore from a store that never answers succeeded")
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Fatalf("restore took %v with a 2 s call deadline", d)
	}
	start = time.Now()
	if _, err := r.Count(ctx); err != nil {
		t.Fatalf("the shard is stuck behind the hung read: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("next call waited %v", d)
	}
	t.Logf("hung restore ended in %v: %v", time.Since(start), err)
	if st := c.servers[0].Status(); st.Running != "" {
		t.Fatalf("shard still running %q", st.Running)
	}
}

// TestFetchImageMissing: an image gone from the store is reported as lost
// (so recovery falls back), not as a transient failure.
func TestFetchImageMissing(t *testing.T) {
	mem := &looseStore{m: map[string][]byte{}}
	_, err := shardrpc.FetchImage(context.Background(), mem, job.RefOf(strings.Repeat("0", 64), []byte("x")))
	if !shardrpc.IsImageLost(err) || !strings.Contains(err.Error(), "not in the blob store") {
		t.Fatalf("missing image: %v", err)
	}
}
