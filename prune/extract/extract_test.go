package extract

import (
	"math/rand/v2"
	"testing"

	"github.com/unipruning/unipruning/prune"
)

func randomMatrices(r *rand.Rand) []Matrix {
	var ms []Matrix
	for i, sh := range [][2]int{{16, 32}, {8, 20}, {32, 16}, {4, 64}} {
		g := make([]float32, sh[0]*sh[1])
		scale := float32(1 + 3*i) // matrices of different typical size
		for j := range g {
			g[j] = scale * float32(r.NormFloat64())
		}
		ms = append(ms, Matrix{Name: string(rune('a' + i)), Out: sh[0], In: sh[1], Gamma: g})
	}
	return ms
}

func TestUniformAndNM(t *testing.T) {
	ms := randomMatrices(rand.New(rand.NewPCG(1, 1)))
	// Per-row ranking prunes the same count per matrix as per-matrix
	// ranking (fair comparisons).
	for _, byRow := range []bool{false, true} {
		rs, err := Masks(ms, Target{Sparsity: 0.7, ByRow: byRow})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rs {
			n := ms[i].Out * ms[i].In
			if r.Mask.Kept() != n-prune.PruneCount(n, 0.7) {
				t.Fatalf("by row %v: %s kept %d of %d", byRow, ms[i].Name, r.Mask.Kept(), n)
			}
		}
	}
	rs, err := Masks(ms, Target{N: 2, M: 8})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if ms[i].In%8 != 0 {
			if !r.Dense || r.Mask.Kept() != ms[i].Out*ms[i].In {
				t.Fatalf("%s (in=%d) must stay dense", ms[i].Name, ms[i].In)
			}
		} else if r.Mask.Kept() != ms[i].Out*ms[i].In/4 {
			t.Fatalf("%s kept %d under 2:8", ms[i].Name, r.Mask.Kept())
		}
	}
}

func TestGlobalAllocationWithCap(t *testing.T) {
	ms := randomMatrices(rand.New(rand.NewPCG(2, 2)))
	total := 0
	for _, m := range ms {
		total += m.Out * m.In
	}
	free, err := Masks(ms, Target{Sparsity: 0.6, Allocation: Global})
	if err != nil {
		t.Fatal(err)
	}
	capped, err := Masks(ms, Target{Sparsity: 0.6, Allocation: Global, MaxMatrixSparsity: 0.7})
	if err != nil {
		t.Fatal(err)
	}
	var keptFree, keptCapped int
	var maxFree float64
	for i := range ms {
		keptFree += free[i].Mask.Kept()
		keptCapped += capped[i].Mask.Kept()
		if s := free[i].Mask.Sparsity(); s > maxFree {
			maxFree = s
		}
		if s := capped[i].Mask.Sparsity(); s > 0.7+1e-12 {
			t.Fatalf("%s at %.3f exceeds the cap", ms[i].Name, s)
		}
	}
	want := total - prune.PruneCount(total, 0.6)
	if keptFree != want || keptCapped != want {
		t.Fatalf("kept %d / %d, want exactly %d", keptFree, keptCapped, want)
	}
	if maxFree <= 0.7 {
		t.Fatalf("the test needs a matrix above the cap without it (max %.3f)", maxFree)
	}
	// Global allocation keeps the largest |Γ| overall: every kept value is
	// at least every pruned value of an uncapped run.
	minKept, maxPruned := float32(1e30), float32(-1)
	for i, m := range ms {
		for j, g := range m.Gamma {
			a := g
			if a < 0 {
				a = -a
			}
			if free[i].Mask.Keep(j/m.In, j%m.In) {
				minKept = min(minKept, a)
			} else {
				maxPruned = max(maxPruned, a)
			}
		}
	}
	if minKept < maxPruned {
		t.Fatalf("global ranking violated: kept %v < pruned %v", minKept, maxPruned)
	}
}
