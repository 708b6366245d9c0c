package coordinator

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
)

func TestPlanContiguousBalanced(t *testing.T) {
	c := &model.Config{Dim: 64, Hidden: 172, Layers: 10, Heads: 8, KVHeads: 4, HeadDim: 8, Vocab: 512, TiedHead: true}
	for n := 1; n <= 10; n++ {
		parts, err := Plan(c, n)
		if err != nil {
			t.Fatal(err)
		}
		if parts[0].From != 0 || parts[n-1].To != c.Layers || !parts[0].Embed || !parts[n-1].Head {
			t.Fatalf("n=%d: %+v", n, parts)
		}
		for i := 1; i < n; i++ {
			if parts[i].From != parts[i-1].To || parts[i].From >= parts[i].To || parts[i].Embed || parts[i-1].Head {
				t.Fatalf("n=%d: not contiguous/non-empty: %+v", n, parts)
			}
		}
	}
	// The embedding weighs like ~1 layer here: shard 0 gets fewer layers.
	parts, _ := Plan(c, 2)
	if parts[0].To-parts[0].From > parts[1].To-parts[1].From {
		t.Fatalf("the embedding shard got more layers: %+v", parts)
	}
	if _, err := Plan(c, 11); err == nil {
		t.Fatal("11 shards for 10 layers accepted")
	}
}

func TestFileLedger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.json")
	l, err := OpenFileLedger(path, "spec-a")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for k := 1; k <= 6; k++ {
		if err := l.BeginStep(ctx, k, 0.1); err != nil {
			t.Fatal(err)
		}
		if k%2 == 0 {
			l.RecordCheckpoint(ctx, job.Checkpoint{Step: k, Shard: "s0", Layers: [2]int{0, 2}, Ref: job.Ref{Key: "a"}})
			if k < 6 { // the second range misses step 6
				l.RecordCheckpoint(ctx, job.Checkpoint{Step: k, Shard: "s1", Layers: [2]int{2, 5}, Ref: job.Ref{Key: "b"}})
			}
		}
	}
	// A replacement shard for [2,5) finds the old shard's checkpoint by range.
	step, ms := l.LatestCommon([][2]int{{0, 2}, {2, 5}})
	if step != 4 || ms[[2]int{2, 5}].Shard != "s1" {
		t.Fatalf("latest common %d %v", step, ms)
	}
	if err := l.Rollback(ctx, 4, "test"); err != nil {
		t.Fatal(err)
	}
	if err := l.BeginStep(ctx, 5, 0.1); err != nil {
		t.Fatalf("after rollback to 4, step 5 must begin: %v", err)
	}
	re, err := OpenFileLedger(path, "spec-a")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := re.LatestCommon([][2]int{{0, 2}, {2, 5}}); s != 4 {
		t.Fatalf("reloaded ledger: latest common %d", s)
	}
	if _, err := OpenFileLedger(path, "spec-b"); err == nil || !strings.Contains(err.Error(), "different settings") {
		t.Fatalf("a ledger of another job was accepted: %v", err)
	}
}
