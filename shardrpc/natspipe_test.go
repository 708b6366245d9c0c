package shardrpc_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unipruning/unipruning/internal/testnats"
	"github.com/unipruning/unipruning/shardrpc"
	"github.com/unipruning/unipruning/transport"
)

// Helpers shared by the tests of this package.
var (
	startNATS     = testnats.Start
	dial          = testnats.Dial
	quietLogger   = testnats.Quiet
	captureLogger = testnats.Capture
	testCtx       = testnats.Ctx
)

// fastStreams retransmits quickly so a test that drops a pipe recovers in
// milliseconds.
var fastStreams = transport.StreamConfig{RetransmitTimeout: 50 * time.Millisecond}

// pipes opens the NATS pipes of all stages, each on its own connection
// (as separate processes would).
func pipes(t *testing.T, ns *transport.Server, subj transport.Subjects, epoch uint64, stages int) []*shardrpc.NATSPipe {
	t.Helper()
	ps := make([]*shardrpc.NATSPipe, stages)
	for i := range ps {
		c := dial(t, ns, "stage", nil)
		p, err := shardrpc.NewNATSPipe(c, subj, epoch, i, stages, fastStreams)
		if err != nil {
			t.Fatalf("NewNATSPipe(stage %d): %v", i, err)
		}
		p.SetWidth(4)
		t.Cleanup(func() { p.Close() })
		ps[i] = p
	}
	return ps
}

func vec(seed, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(seed*1000+i) / 7
	}
	return v
}

// TestNATSPipeChain passes activations down and gradients up a 3-stage
// chain for several steps, as the worker does.
func TestNATSPipeChain(t *testing.T) {
	ns := startNATS(t)
	subj := transport.Subjects{Job: "pipe"}
	ps := pipes(t, ns, subj, 1, 3)
	ctx := testCtx(t, 10*time.Second)
	for k := 1; k <= 5; k++ {
		if err := ps[0].SendForward(ctx, k, vec(k, 16)); err != nil {
			t.Fatal(err)
		}
		h, err := ps[1].RecvForward(ctx, k)
		if err != nil || !slices.Equal(h, vec(k, 16)) {
			t.Fatalf("step %d: stage 1 got %v, %v", k, h, err)
		}
		if err := ps[1].SendForward(ctx, k, vec(k+10, 16)); err != nil {
			t.Fatal(err)
		}
		if h, err = ps[2].RecvForward(ctx, k); err != nil || !slices.Equal(h, vec(k+10, 16)) {
			t.Fatalf("step %d: stage 2 got %v, %v", k, h, err)
		}
		if err := ps[2].SendBackward(ctx, k, vec(-k, 16)); err != nil {
			t.Fatal(err)
		}
		if h, err = ps[1].RecvBackward(ctx, k); err != nil || !slices.Equal(h, vec(-k, 16)) {
			t.Fatalf("step %d: stage 1 grad %v, %v", k, h, err)
		}
		if err := ps[1].SendBackward(ctx, k, vec(-k-10, 16)); err != nil {
			t.Fatal(err)
		}
		if h, err = ps[0].RecvBackward(ctx, k); err != nil || !slices.Equal(h, vec(-k-10, 16)) {
			t.Fatalf("step %d: stage 0 grad %v, %v", k, h, err)
		}
	}
	if st := ps[1].Stats(); st.FramesSent != 10 || st.FramesReceived != 10 || st.BytesSent == 0 {
		t.Errorf("stage 1 stats %+v: want 10 frames each way", st)
	}
}

// TestNATSPipeEnds checks that the chain's ends refuse what they lack.
func TestNATSPipeEnds(t *testing.T) {
	ns := startNATS(t)
	ps := pipes(t, ns, transport.Subjects{Job: "ends"}, 1, 2)
	ctx := testCtx(t, 5*time.Second)
	if _, err := ps[0].RecvForward(ctx, 1); err == nil || !strings.Contains(err.Error(), "first") {
		t.Errorf("first stage RecvForward: %v", err)
	}
	if err := ps[0].SendBackward(ctx, 1, nil); err == nil {
		t.Error("first stage SendBackward succeeded")
	}
	if err := ps[1].SendForward(ctx, 1, nil); err == nil || !strings.Contains(err.Error(), "last") {
		t.Errorf("last stage SendForward: %v", err)
	}
	if _, err := ps[1].RecvBackward(ctx, 1); err == nil {
		t.Error("last stage RecvBackward succeeded")
	}
	single := pipes(t, ns, transport.Subjects{Job: "single"}, 1, 1)[0]
	if _, err := single.RecvForward(ctx, 1); err == nil {
		t.Error("single stage RecvForward succeeded")
	}
	if _, err := shardrpc.NewNATSPipe(dial(t, ns, "x", nil), transport.Subjects{Job: "x"}, 1, 2, 2, fastStreams); err == nil {
		t.Error("stage 2 of 2 accepted")
	}
}

// TestNATSPipeStepOrder: a frame of an older step is dropped; a frame of a
// newer step is an error, and is kept for the call that wants it.
func TestNATSPipeStepOrder(t *testing.T) {
	ns := startNATS(t)
	ps := pipes(t, ns, transport.Subjects{Job: "order"}, 3, 2)
	ctx := testCtx(t, 5*time.Second)
	for _, k := range []int{1, 2} {
		if err := ps[0].SendForward(ctx, k, vec(k, 8)); err != nil {
			t.Fatal(err)
		}
	}
	h, err := ps[1].RecvForward(ctx, 2) // skips step 1's frame
	if err != nil || !slices.Equal(h, vec(2, 8)) {
		t.Fatalf("RecvForward(2) = %v, %v", h, err)
	}
	if err := ps[0].SendForward(ctx, 4, vec(4, 8)); err != nil {
		t.Fatal(err)
	}
	if _, err := ps[1].RecvForward(ctx, 3); err == nil || !strings.Contains(err.Error(), "step 4 while waiting for step 3") {
		t.Fatalf("RecvForward(3) with step 4 queued: %v", err)
	}
	if h, err = ps[1].RecvForward(ctx, 4); err != nil || !slices.Equal(h, vec(4, 8)) {
		t.Fatalf("RecvForward(4) after the error = %v, %v", h, err)
	}
}

// TestNATSPipeEpochs: pipes of a new epoch use new subjects, so a stage of
// the old epoch that is still alive cannot feed the new chain, and a
// replacement stage finds its neighbours by (epoch, stage) alone.
func TestNATSPipeEpochs(t *testing.T) {
	ns := startNATS(t)
	subj := transport.Subjects{Job: "epochs"}
	old := pipes(t, ns, subj, 1, 2)
	cur := pipes(t, ns, subj, 2, 2)
	ctx := testCtx(t, 5*time.Second)
	if err := old[0].SendForward(ctx, 1, vec(99, 4)); err != nil {
		t.Fatal(err)
	}
	if err := cur[0].SendForward(ctx, 1, vec(1, 4)); err != nil {
		t.Fatal(err)
	}
	h, err := cur[1].RecvForward(ctx, 1)
	if err != nil || !slices.Equal(h, vec(1, 4)) {
		t.Fatalf("epoch 2 stage 1 got %v, %v (want the epoch-2 frame)", h, err)
	}
	if h, err = old[1].RecvForward(ctx, 1); err != nil || !slices.Equal(h, vec(99, 4)) {
		t.Fatalf("epoch 1 stage 1 got %v, %v", h, err)
	}
	if cur[0].Epoch() != 2 {
		t.Errorf("Epoch() = %d", cur[0].Epoch())
	}
}

// TestNATSPipeCloseUnblocks: Close ends a blocked receive.
func TestNATSPipeCloseUnblocks(t *testing.T) {
	ns := startNATS(t)
	ps := pipes(t, ns, transport.Subjects{Job: "close"}, 1, 2)
	errc := make(chan error, 1)
	go func() {
		_, err := ps[1].RecvForward(context.Background(), 1)
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := ps[1].Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, transport.ErrClosed) {
			t.Errorf("blocked RecvForward returned %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock RecvForward")
	}
}
