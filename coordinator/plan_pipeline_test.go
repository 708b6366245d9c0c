package coordinator

import (
	"testing"

	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/nn"
)

// TestPlanSpecBalancesCompute: on a 110M LLaMA shape with an untied
// 32000-token head, the parameter plan gives both shards 6 layers (the
// embedding weighs as much as the head), but the head is computed and
// the embedding is not: the chunked plan moves a layer to shard 0 and
// lowers the slowest stage's compute. Unchunked specs keep Plan.
func TestPlanSpecBalancesCompute(t *testing.T) {
	c := &model.Config{Arch: "LlamaForCausalLM", Dim: 768, Hidden: 2048, Layers: 12, Heads: 12, KVHeads: 12,
		HeadDim: 64, Vocab: 32000, MaxSeq: 2048, NormEps: 1e-5, RopeTheta: 10000}
	spec := job.Spec{Mode: job.ModeGlobal, Seqlen: 1024}
	plain, err := PlanSpec(c, 2, spec)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := Plan(c, 2)
	if plain[0] != base[0] || plain[1] != base[1] {
		t.Fatalf("unchunked spec: plan %+v, want Plan's %+v", plain, base)
	}
	spec.Chunk = 128
	parts, err := PlanSpec(c, 2, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !parts[0].Embed || !parts[1].Head || parts[0].From != 0 || parts[0].To != parts[1].From || parts[1].To != 12 {
		t.Fatalf("chunked plan %+v is not two contiguous ranges with embedding and head", parts)
	}
	slowest := func(ps []nn.Part) float64 {
		return max(StageCost(c, ps[0], 1024, true), StageCost(c, ps[1], 1024, true))
	}
	if base[0].To != 6 || parts[0].To <= base[0].To || slowest(parts) >= slowest(base) {
		t.Fatalf("chunked plan %+v (slowest stage %.3g) does not improve on %+v (%.3g)", parts, slowest(parts), base, slowest(base))
	}
	t.Logf("parameter plan %d+%d layers, compute plan %d+%d; slowest stage %.3g → %.3g MAC/token",
		base[0].To, 12-base[0].To, parts[0].To, 12-parts[0].To, slowest(base), slowest(parts))
}
