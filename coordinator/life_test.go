package coordinator

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unipruning/unipruning/consensus"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/transport"
)

var wantGamma = []string{"gamma layers [0,2) step 8", "gamma layers [2,4) step 8"}

// TestNodeFallsBackFromLostCheckpoints (issue 12 class 2): the newest
// checkpoint's images are gone from the blob store when a step fails; the
// leader restores the newest intact one (step 4), drops the lost one from
// Raft, says so, and the job ends done with the same Γ.
func TestNodeFallsBackFromLostCheckpoints(t *testing.T) {
	spec := testSpec(t)
	c := newCluster(t, spec, 2, 3)
	var once sync.Once
	c.world.onStep = func(id string, k int) (err error) {
		if id == "s1" && k == 7 {
			once.Do(func() {
				// the store lost one part of step 6 (the other is intact)
				c.world.dropBlobs(func(img string) bool { return img == "checkpoint layers [2,4) step 6" })
				err = errors.New("injected: shard crashed")
			})
		}
		return err
	}
	start := time.Now()
	if err := c.run(t); err != nil {
		t.Fatal(err)
	}
	st := c.raft.State()
	if st.Status != consensus.StatusDone || len(st.RolledBack) != 1 || st.RolledBack[0].ToStep != 4 ||
		!strings.Contains(st.RolledBack[0].Reason, "lost checkpoint") {
		t.Fatalf("status %q rollbacks %+v, want done after one rollback to step 4 past a lost checkpoint", st.Status, st.RolledBack)
	}
	if got := c.world.gammaImages(c.done); !slices.Equal(got, wantGamma) {
		t.Fatalf("Γ parts %v", got)
	}
	t.Logf("recovered from a lost checkpoint in %v", time.Since(start))
}

// TestNodeRestartsFromStepZero: every checkpoint is lost (the NATS store
// was wiped); recovery restarts from step 0 instead of looping.
func TestNodeRestartsFromStepZero(t *testing.T) {
	spec := testSpec(t)
	c := newCluster(t, spec, 2, 3)
	var once sync.Once
	c.world.onStep = func(id string, k int) (err error) {
		if id == "s0" && k == 7 {
			once.Do(func() {
				c.world.dropBlobs(func(img string) bool { return strings.HasPrefix(img, "checkpoint") })
				err = errors.New("injected: NATS restarted without its store")
			})
		}
		return err
	}
	if err := c.run(t); err != nil {
		t.Fatal(err)
	}
	st := c.raft.State()
	if st.Status != consensus.StatusDone || len(st.RolledBack) != 1 || st.RolledBack[0].ToStep != 0 {
		t.Fatalf("status %q rollbacks %+v, want done after a rollback to step 0", st.Status, st.RolledBack)
	}
	if got := steps(c.world.callsOf("s0", "restore")); !slices.Equal(got, []int{0}) {
		t.Fatalf("s0 restores %v, want one reset", got)
	}
	if got := c.world.gammaImages(c.done); !slices.Equal(got, wantGamma) {
		t.Fatalf("Γ parts %v", got)
	}
}

// TestNodeFailsInvalidInputAtOnce (class 1): a job whose inputs do not
// check out fails at once — no assignment, no retries — with the reason
// and class in Raft and in Run's error.
func TestNodeFailsInvalidInputAtOnce(t *testing.T) {
	spec := testSpec(t)
	c := newCluster(t, spec, 2, 3)
	c.node.cfg.Check = func(j *job.Job) error { return job.Invalidf("calibration text %s: no such file", j.Spec.CalibPath) }
	start := time.Now()
	err := c.run(t)
	var jf *JobFailedError
	if !errors.As(err, &jf) || jf.Class != "invalid_input" || !strings.Contains(jf.Reason, "unused.txt: no such file") {
		t.Fatalf("Run: %v, want an invalid_input failure naming the file", err)
	}
	st := c.raft.State()
	if st.Status != consensus.StatusFailed || st.FailClass != "invalid_input" || st.Assignment.Epoch != 0 {
		t.Fatalf("state %q class %q epoch %d", st.Status, st.FailClass, st.Assignment.Epoch)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("an invalid job took %v to fail", d)
	}
}

// TestNodeFailsShardInputError: a shard that cannot load its input
// (reported with code invalid_input) fails the job without retries.
func TestNodeFailsShardInputError(t *testing.T) {
	spec := testSpec(t)
	c := newCluster(t, spec, 2, 5)
	c.world.onStep = func(id string, k int) error {
		return job.Invalidf("seqlen 4096 exceeds the model's context of 16")
	}
	err := c.run(t)
	var jf *JobFailedError
	if !errors.As(err, &jf) || jf.Class != "invalid_input" {
		t.Fatalf("Run: %v", err)
	}
	if st := c.raft.State(); st.Assignment.Epoch != 1 {
		t.Fatalf("retried %d times", st.Assignment.Epoch-1)
	}
}

// TestFailedIsFinalAcrossRestarts (class 3): a replica restarted on the
// Raft directory of a failed job reports the same failure, runs nothing,
// and `retry` (a RetryJob in Raft) reopens the job, which then finishes.
func TestFailedIsFinalAcrossRestarts(t *testing.T) {
	spec := testSpec(t)
	c := newCluster(t, spec, 2, 2)
	fail := true
	var mu sync.Mutex
	c.world.onStep = func(id string, k int) error {
		mu.Lock()
		defer mu.Unlock()
		if k == 3 && fail {
			return errors.New("injected: disk full")
		}
		return nil
	}
	first := c.run(t)
	var jf *JobFailedError
	if !errors.As(first, &jf) || !strings.Contains(jf.Reason, "disk full") {
		t.Fatalf("first run: %v", first)
	}
	calls := len(c.world.calls)
	// Restarts on the same Raft directory: the replica replays the log.
	for range 2 {
		c.restart(t)
		again := c.run(t)
		if again == nil || again.Error() != first.Error() {
			t.Fatalf("after restart: %v, want the same %v", again, first)
		}
	}
	if len(c.world.calls) != calls {
		t.Fatalf("a failed job ran again: %v", c.world.calls[calls:])
	}
	// The user's retry reopens it; the job resumes and finishes.
	mu.Lock()
	fail = false
	mu.Unlock()
	c.node.cfg.StayAfterDone = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- c.node.Run(ctx) }()
	subj, err := RetrySubject(c.subj, "c1")
	if err != nil {
		t.Fatal(err)
	}
	var rep RetryReply
	if err := transport.CallJSON(ctx, c.conn, subj, RetryRequest{Job: "j", Reason: "disk freed"}, &rep, transport.CallOptions{Timeout: 5 * time.Second, Retries: 20, Backoff: 100 * time.Millisecond}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	for c.raft.State().Status != consensus.StatusDone {
		if ctx.Err() != nil {
			t.Fatalf("retried job did not finish: %+v", c.raft.State().Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-runErr
	if st := c.raft.State(); st.Retries != 1 || st.Error != "" {
		t.Fatalf("after retry: %+v", st.Retries)
	}
	if got := c.world.gammaImages(c.done); !slices.Equal(got, wantGamma) {
		t.Fatalf("Γ parts %v", got)
	}
	// Retrying a done job is refused.
	if err := transport.CallJSON(context.Background(), c.conn, subj, RetryRequest{Job: "j"}, &rep, transport.CallOptions{Timeout: time.Second}); err == nil {
		// nobody serves after Run returned: an error either way
		t.Fatal("retry of a finished job answered")
	}
}

// TestFencedLeaderRecovers (class 5): a shard's fence was raised far
// above Raft's epoch by a forged assign; the leader, still leading, does
// not stall: it reads the shards' epoch and recovers under a higher one.
func TestFencedLeaderRecovers(t *testing.T) {
	spec := testSpec(t)
	c := newCluster(t, spec, 2, 3)
	var once sync.Once
	c.world.onStep = func(id string, k int) error {
		if k == 5 {
			once.Do(func() {
				c.world.mu.Lock()
				c.world.fence = 999999
				c.world.mu.Unlock()
			})
		}
		return nil
	}
	if err := c.run(t); err != nil {
		t.Fatal(err)
	}
	st := c.raft.State()
	if st.Status != consensus.StatusDone || st.Assignment.Epoch != 1000000 {
		t.Fatalf("status %q epoch %d, want done at epoch 1000000", st.Status, st.Assignment.Epoch)
	}
	if got := c.world.gammaImages(c.done); !slices.Equal(got, wantGamma) {
		t.Fatalf("Γ parts %v", got)
	}
}

// restart shuts the replica's Raft node down and reopens it on the same
// directory, with a new Node around it.
func (c *cluster) restart(t *testing.T) {
	t.Helper()
	if err := c.raft.Shutdown(); err != nil {
		t.Fatal(err)
	}
	r, err := consensus.Open(c.raftCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown() })
	c.raft = r
	cfg := c.node.cfg
	cfg.Raft, cfg.Metrics = r, nil
	c.node = NewNode(cfg)
}
