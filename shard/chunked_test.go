package shard_test

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/prune/statefile"
	"github.com/unipruning/unipruning/shard"
	"github.com/unipruning/unipruning/shardrpc"
)

// chunkedSpec is storiesSpec with windows of 64 tokens in chunks of 20
// (20, 20, 20, 4: the last chunk is short).
func chunkedSpec(t *testing.T, mode string) job.Spec {
	s := storiesSpec(t, mode)
	s.Chunk = 20
	return s
}

// TestChunkedShardCounts: a chunked search gives bitwise the same Γ and
// step facts on 1, 2 and 3 in-process shards (the chunk pipeline of
// several shards runs the one-process schedule), in every mode.
func TestChunkedShardCounts(t *testing.T) {
	for _, mode := range []string{job.ModeGlobal, job.ModeFrozen, job.ModeReference} {
		t.Run(mode, func(t *testing.T) {
			spec := chunkedSpec(t, mode)
			want := runLocal(t, spec, storiesParts(t, spec, 1))
			for _, n := range []int{2, 3} {
				got := runLocal(t, spec, storiesParts(t, spec, n))
				sameGamma(t, fmt.Sprintf("%d shards vs 1", n), got, want)
			}
		})
	}
}

// TestChunkedNATS: the chunk pipeline over NATS (2 and 3 shard servers,
// each stage streaming chunk c+1 while its neighbour computes chunk c)
// gives bitwise the Γ and step facts of 1 in-process shard.
func TestChunkedNATS(t *testing.T) {
	spec := chunkedSpec(t, job.ModeGlobal)
	want := runLocal(t, spec, storiesParts(t, spec, 1))
	for _, n := range []int{2, 3} {
		c := newCluster(t, n, shardrpc.ServeOptions{})
		rs := c.remotes(t, spec, storiesParts(t, spec, n), 1, shardrpc.CallOptions{})
		got, err := drive(testCtx(t, 60*time.Second), t, spec, apis(rs), newLedger(t, spec), c.blobs)
		if err != nil {
			t.Fatalf("%d NATS shards: %v", n, err)
		}
		sameGamma(t, fmt.Sprintf("chunked, %d NATS shards vs 1 in-process", n), got, want)
	}
}

// TestChunkedAgainstUnchunked: the chunked engine computes the same step
// losses and gradient norms as the unchunked one up to float32 rounding
// (relative 1e-5: the arithmetic differs only in how sums are split).
func TestChunkedAgainstUnchunked(t *testing.T) {
	spec := storiesSpec(t, job.ModeGlobal)
	parts := storiesParts(t, spec, 2)
	plain := runLocal(t, spec, parts)
	split := runLocal(t, chunkedSpec(t, job.ModeGlobal), parts)
	var worst float64
	for k, f := range plain.steps {
		g := split.steps[k]
		for _, v := range [][2]*float64{{f.Loss, g.Loss}, {f.GradNorm, g.GradNorm}} {
			if v[0] == nil || v[1] == nil {
				t.Fatalf("step %d: missing facts %+v %+v", k, f, g)
			}
			d := math.Abs(*v[0]-*v[1]) / math.Abs(*v[0])
			if d > 1e-5 {
				t.Errorf("step %d: unchunked %v, chunked %v (relative %.3g)", k, *v[0], *v[1], d)
			}
			worst = math.Max(worst, d)
		}
	}
	t.Logf("loss and gradient norm: max relative difference %.3g", worst)
}

// TestChunkedOneChunk: a chunk as long as the window is the unchunked run
// (the spec is normalised, so it is the same job).
func TestChunkedOneChunk(t *testing.T) {
	spec := storiesSpec(t, job.ModeGlobal)
	long := spec
	long.Chunk = spec.Seqlen
	long.Defaults()
	if long.Hash() != spec.Hash() {
		t.Fatalf("chunk = seqlen changes the spec hash")
	}
	split := chunkedSpec(t, job.ModeGlobal)
	if split.Hash() == spec.Hash() {
		t.Fatalf("chunk 20 has the hash of the unchunked spec")
	}
}

// TestChunkedRemoteResume: a chunked search over NATS on 3 shard servers
// stops after the checkpoint of step 2; fresh servers restore and finish
// it: Γ and step facts equal an uninterrupted 1-shard in-process run.
func TestChunkedRemoteResume(t *testing.T) {
	spec := chunkedSpec(t, job.ModeGlobal)
	want := runLocal(t, spec, storiesParts(t, spec, 1))
	parts := storiesParts(t, spec, 3)
	c := newCluster(t, 3, shardrpc.ServeOptions{})
	ledger := newLedger(t, spec)
	ctx := testCtx(t, 60*time.Second)
	rs := c.remotes(t, spec, parts, 1, shardrpc.CallOptions{})
	if _, err := drive(ctx, t, spec, apis(rs), failAt{ledger, 3}, c.blobs); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("first run: %v (want the injected failure)", err)
	}
	c.startServers(t, 3, shardrpc.ServeOptions{})
	rs = c.remotes(t, spec, parts, 2, shardrpc.CallOptions{})
	got, err := drive(ctx, t, spec, apis(rs), ledger, c.blobs)
	if err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	sameGamma(t, "chunked, 3 NATS shards, resumed vs 1 in-process shard", got, want)
}

// sameGamma compares two runs split into any number of Γ parts: every
// target's Γ (bits) and first-steps, and the ledger's step facts.
func sameGamma(t *testing.T, what string, got, want runResult) {
	t.Helper()
	g, w := gammaTensors(t, got), gammaTensors(t, want)
	if len(g) != len(w) || len(w) == 0 {
		t.Fatalf("%s: %d Γ tensors, want %d", what, len(g), len(w))
	}
	for name, wt := range w {
		gt, ok := g[name]
		switch {
		case !ok:
			t.Fatalf("%s: no %s", what, name)
		case !slices.Equal(gt.I32, wt.I32):
			t.Fatalf("%s: %s differs", what, name)
		case !slices.EqualFunc(gt.F32, wt.F32, func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }):
			t.Fatalf("%s: %s differs", what, name)
		}
	}
	if !reflect.DeepEqual(got.steps, want.steps) {
		t.Errorf("%s: ledger step facts differ:\n got %s\nwant %s", what, facts(got.steps), facts(want.steps))
	}
}

func gammaTensors(t *testing.T, r runResult) map[string]*statefile.Tensor {
	t.Helper()
	out := map[string]*statefile.Tensor{}
	for _, img := range r.gammas {
		d, err := statefile.Decode(img)
		if err != nil {
			t.Fatal(err)
		}
		for name, ts := range d.Tensors {
			out[name] = ts
		}
	}
	return out
}

// TestChunkedPhases: chunked steps report their forward and backward
// time in the worker's phases, as unchunked ones do.
func TestChunkedPhases(t *testing.T) {
	spec := chunkedSpec(t, job.ModeGlobal)
	spec.Steps = 2
	blobs, _ := newBlobs(t)
	ls := localShards(t, storiesParts(t, spec, 2), blobs)
	if _, err := drive(testCtx(t, 60*time.Second), t, spec, ls, newLedger(t, spec), blobs); err != nil {
		t.Fatal(err)
	}
	for _, api := range ls {
		p := api.(*shard.Local).Worker().Phases()
		if !(p.Forward > 0 && p.Backward > 0) {
			t.Errorf("%s: phases %+v lack the chunked forward or backward", api.ID(), p)
		}
	}
}

// TestChunkedMemoryPlan: the memory plan of a chunked search counts the
// window's K/V (and their gradients) per layer with the kept inputs.
func TestChunkedMemoryPlan(t *testing.T) {
	spec := chunkedSpec(t, job.ModeGlobal)
	ck, err := model.Open(spec.Model, spec.Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	c := ck.Config
	parts := storiesParts(t, spec, 2)
	item := func(p shard.MemoryPlan, name string) int64 {
		for _, it := range p.Items {
			if it.Name == name {
				return it.Bytes
			}
		}
		t.Fatalf("no item %q in %+v", name, p.Items)
		return 0
	}
	const act = "activations (layer inputs kept for backward)"
	chunked := item(shard.PlanMemory(c, spec, parts, 2), act)
	T, L := int64(spec.Seqlen), int64(c.Layers)
	if want := 4 * L * (T*int64(c.Dim) + 4*T*int64(c.KVDim())); chunked != want {
		t.Fatalf("chunked activations %d bytes, want %d (inputs, K, V and their gradients)", chunked, want)
	}
	plain := spec
	plain.Chunk = 0
	if got := item(shard.PlanMemory(c, plain, parts, 2), act); got != 4*L*T*int64(c.Dim) {
		t.Fatalf("unchunked activations %d bytes, want the inputs' %d", got, 4*L*T*int64(c.Dim))
	}
}
