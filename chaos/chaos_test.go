//go:build chaos

package chaos

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unipruning/unipruning/job"
)

var modes = []string{"global", "frozen"}

// faultStep is the step after which faults are injected (mid-search:
// there are checkpoints at 4 and 8 to roll back to).
const faultStep = 10

// testTimeout bounds one cluster run, faults and recovery included.
const testTimeout = 4 * time.Minute

const shardLost = "shard lost"

func setup(t *testing.T, mode string) (job.Job, *reference, context.Context) {
	t.Helper()
	j := chaosJob(t, mode)
	if j.Spec.Steps < faultStep+8 {
		t.Fatalf("CHAOS_STEPS=%d leaves no room after the fault at step %d", j.Spec.Steps, faultStep)
	}
	ref := referenceRun(t, j)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return j, ref, ctx
}

// TestBaseline: 3 coordinators + 3 shard processes, no fault: Γ and the
// extracted masks equal the one-process run's.
func TestBaseline(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			j, ref, ctx := setup(t, mode)
			c := newCluster(t, j)
			start := c.up(3)
			end := c.waitDone(ctx)
			sameGamma(t, ref, c.out, true)
			if e := c.maxEpoch(); e != 1 {
				t.Errorf("no fault was injected, yet the last epoch is %d", e)
			}
			t.Logf("cluster run %.2fs from process start (election, registration and loading included); one-process reference %.2fs",
				end.Sub(start).Seconds(), ref.seconds)
			sameMasks(t, ref.dir, c.out)
		})
	}
}

// sameMasks extracts 50% unstructured and 2:4 from both Γ stores and
// compares the masks and pruned models byte for byte.
func sameMasks(t *testing.T, refDir, dir string) {
	t.Helper()
	extract := func(run string) string {
		out := filepath.Join(t.TempDir(), "x")
		cmd := exec.Command(binary(t), "extract", "--run", run, "--sparsity", "0.5", "--pattern", "2:4", "--out", out)
		cmd.Dir = repoRoot(t)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("extract %s: %v\n%s", run, err, tail(b, 10))
		}
		return out
	}
	a, b := extract(refDir), extract(dir)
	n := 0
	for _, target := range []string{"sparsity-0.50", "pattern-2of4"} {
		ents, err := os.ReadDir(filepath.Join(a, target))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.Name() == "report.json" { // timings and paths
				continue
			}
			x, _ := os.ReadFile(filepath.Join(a, target, e.Name()))
			y, err := os.ReadFile(filepath.Join(b, target, e.Name()))
			if err != nil || !bytes.Equal(x, y) {
				t.Errorf("%s/%s differs from the reference extraction (%v)", target, e.Name(), err)
			}
			n++
		}
	}
	t.Logf("masks and pruned models identical (%d files: 50%% unstructured and 2:4)", n)
}

// TestShardKill: kill -9 of a shard after step 10, with a replacement
// (same id: a restarted process; new id: a new machine; or a standby that
// was registered from the start). The job completes with identical Γ.
func TestShardKill(t *testing.T) {
	cases := []struct{ mode, how string }{
		{"global", "same-id"},
		{"frozen", "same-id"},
		{"global", "new-id"},
		{"frozen", "standby"},
	}
	for _, tc := range cases {
		t.Run(tc.mode+"/"+tc.how, func(t *testing.T) {
			j, ref, ctx := setup(t, tc.mode)
			c := newCluster(t, j)
			c.up(3)
			if tc.how == "standby" {
				c.startShard("standby", "--standby")
			}
			k := c.waitStep(ctx, faultStep)
			at := c.kill9("s1")
			switch tc.how {
			case "same-id":
				c.startShard("s1")
			case "new-id":
				c.startShard("s1-new")
			}
			t.Logf("killed shard s1 (SIGKILL) after step %d; replacement: %s", k, tc.how)
			c.waitDone(ctx)
			sameGamma(t, ref, c.out, true)
			if e := c.maxEpoch(); e < 2 {
				t.Errorf("the shard kill caused no new epoch (last epoch %d)", e)
			}
			r := c.recovery(at, shardLost)
			t.Logf("RECOVERY shard kill (%s, %s): %v", tc.mode, tc.how, r)
		})
	}
}

// TestLeaderKill: kill -9 of the Raft leader after step 10; another
// replica takes over and finishes; the old leader is restarted (same Raft
// directory) once the new one leads and rejoins as a follower.
func TestLeaderKill(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			j, ref, ctx := setup(t, mode)
			c := newCluster(t, j)
			c.up(3)
			k := c.waitStep(ctx, faultStep)
			st, err := c.status(ctx)
			if err != nil || st.Leader == "" {
				t.Fatalf("status: %v (leader %q)", err, st.Leader)
			}
			old := st.Leader
			at := c.kill9(old)
			t.Logf("killed the Raft leader %s (SIGKILL) after step %d", old, k)
			// Restart it once another replica leads.
			for {
				if e, ok := firstAfter(c.events("c"), at, "leading", nil); ok {
					if e.replica == old {
						t.Fatalf("the killed leader %s logged leadership", old)
					}
					break
				}
				if c.finished() {
					break
				}
				select {
				case <-ctx.Done():
					t.Fatalf("no new leader: %v", ctx.Err())
				case <-time.After(50 * time.Millisecond):
				}
			}
			i, _ := strconv.Atoi(strings.TrimPrefix(old, "c"))
			c.startCoordinator(i)
			c.waitDone(ctx)
			sameGamma(t, ref, c.out, true)
			r := c.recovery(at, "leading")
			if r.by == old || r.by == "" {
				t.Errorf("no other replica took over (%v)", r)
			}
			t.Logf("FAILOVER leader kill (%s): %v", mode, r)
		})
	}
}

// TestNATSRestart: the NATS server stops (every connection is cut) for
// longer than the heartbeat timeout and comes back on the same port with
// its JetStream store (the checkpoints); clients reconnect.
func TestNATSRestart(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			j, ref, ctx := setup(t, mode)
			c := newCluster(t, j)
			c.up(3)
			k := c.waitStep(ctx, faultStep)
			c.stop("nats")
			at := time.Now()
			outage := c.hb + time.Second
			time.Sleep(outage)
			c.startNATS()
			t.Logf("NATS server stopped after step %d and restarted after %v", k, outage)
			c.waitDone(ctx)
			sameGamma(t, ref, c.out, true)
			r := c.recovery(at, shardLost)
			t.Logf("RECOVERY NATS restart (%s): %v; back %v after the server returned", mode, r, max(r.firstStep-outage, 0))
		})
	}
}

// TestShardFrozen: a shard stops answering (SIGSTOP: no heartbeats, its
// NATS connection goes stale) for longer than the heartbeat timeout, then
// resumes (SIGCONT) with its old epoch: it is fenced, re-assigned, rolled
// back, and the job completes with identical Γ.
func TestShardFrozen(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			j, ref, ctx := setup(t, mode)
			c := newCluster(t, j)
			c.up(3)
			k := c.waitStep(ctx, faultStep)
			c.signal("s1", syscall.SIGSTOP)
			at := time.Now()
			pause := c.hb + 2*time.Second
			time.Sleep(pause)
			c.signal("s1", syscall.SIGCONT)
			t.Logf("shard s1 stopped (SIGSTOP) after step %d for %v", k, pause)
			c.waitDone(ctx)
			sameGamma(t, ref, c.out, true)
			if e := c.maxEpoch(); e < 2 {
				t.Errorf("the paused shard caused no new epoch (last epoch %d)", e)
			}
			r := c.recovery(at, shardLost)
			t.Logf("RECOVERY shard paused (%s): %v", mode, r)
		})
	}
}
