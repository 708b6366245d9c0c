package prune

import (
	"math"
	"slices"
	"testing"
)

// reconGolden is prune/testdata/reconstruct/case1.json, written by
// tools/reference/reconstruct_ref.py: the OBS reconstruction of fixed masks
// in float64 numpy, column by column with explicit inverses of H[i:, i:]
// (no Cholesky factor, no blocks) — an independent route to the same
// mathematics.
type reconGolden struct {
	Out, In, Blocksize int
	Percdamp           float64
	Batches            []sgptBatch
	W                  []float64
	Cases              []struct {
		Name string
		Keep []int
		W    []float64
		Loss float64
	}
}

// TestReconstructGolden: SparseGPT's sweep with a given mask (Mask set)
// matches the reference on an unstructured, a 2:4 and a dead-input mask,
// in float64 and through the float32 API, and the mask is left as given.
func TestReconstructGolden(t *testing.T) {
	var g reconGolden
	readGolden(t, "testdata/reconstruct/case1.json", &g)
	h := goldenHessian(g.In, g.Batches)
	for _, c := range g.Cases {
		keep := make([]bool, len(c.Keep))
		for i, k := range c.Keep {
			keep[i] = k == 1
		}
		cfg := SparseGPTConfig{Mask: MaskFromKeep(g.Out, g.In, keep), BlockSize: g.Blocksize, PercDamp: g.Percdamp}
		inv, err := NewSGPTInverse(h, cfg.PercDamp)
		if err != nil {
			t.Fatal(err)
		}
		if err := sgptCheck(len(g.W), g.Out, g.In, &cfg); err != nil {
			t.Fatal(err)
		}
		w := slices.Clone(g.W)
		res := sgptRun(w, g.Out, g.In, inv, cfg)
		if !slices.Equal(res.Keep, keep) {
			t.Fatalf("%s: the given mask was changed", c.Name)
		}
		dw, dl := sgptRelDiff(w, c.W), math.Abs(res.Loss-c.Loss)/c.Loss
		t.Logf("%s: weights rel diff %.2g, loss rel diff %.2g", c.Name, dw, dl)
		if dw > 1e-9 || dl > 1e-9 {
			t.Errorf("%s: weights differ by %g, loss by %g (relative)", c.Name, dw, dl)
		}
		w32 := make([]float32, len(g.W))
		for i, v := range g.W {
			w32[i] = float32(v)
		}
		if _, err := SparseGPT(w32, g.Out, g.In, h, cfg); err != nil {
			t.Fatal(err)
		}
		for i, v := range w32 {
			if math.Abs(float64(v)-c.W[i]) > 1e-6*math.Abs(c.W[i]) || (!keep[i] && v != 0) {
				t.Fatalf("%s: float32 API weight %d = %v, want %v", c.Name, i, v, c.W[i])
			}
		}
	}
	if _, err := SparseGPT(make([]float32, g.Out*g.In), g.Out, g.In, h, SparseGPTConfig{Mask: NewMask(1, 3)}); err == nil {
		t.Error("a mask of the wrong size was accepted")
	}
}

// TestReconstructOwnMask: given SparseGPT's own mask, the fixed-mask sweep
// reproduces SparseGPT's weights bit for bit (selection and solve are
// separable), and the reconstruction leaves a smaller layer-output error
// than zeroing the pruned weights alone.
func TestReconstructOwnMask(t *testing.T) {
	var g sgptGolden
	readGolden(t, "testdata/sparsegpt/case1.json", &g)
	h := goldenHessian(g.In, g.Batches)
	orig := make([]float32, len(g.W))
	for i, v := range g.W {
		orig[i] = float32(v)
	}
	for _, c := range g.Cases {
		own := slices.Clone(orig)
		res, err := SparseGPT(own, g.Out, g.In, h, SparseGPTConfig{Sparsity: c.Sparsity, N: c.N, M: c.M, BlockSize: g.Blocksize})
		if err != nil {
			t.Fatal(err)
		}
		fixed := slices.Clone(orig)
		if _, err := SparseGPT(fixed, g.Out, g.In, h, SparseGPTConfig{Mask: MaskFromKeep(g.Out, g.In, res.Keep), BlockSize: g.Blocksize}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(own, fixed) {
			t.Fatalf("%s: the fixed-mask sweep differs from SparseGPT with the same mask", c.Name)
		}
		masked := slices.Clone(orig)
		for i, k := range res.Keep {
			if !k {
				masked[i] = 0
			}
		}
		eRec, eMask := outputError(h, orig, fixed, g.Out, g.In), outputError(h, orig, masked, g.Out, g.In)
		t.Logf("%s: output error reconstructed %.4g, mask only %.4g", c.Name, eRec, eMask)
		if !(eRec < eMask) {
			t.Errorf("%s: reconstruction error %g not below the mask-only %g", c.Name, eRec, eMask)
		}
	}
}

// outputError is Σ_rows (w'−w)ᵀ H (w'−w): the layer's squared output
// error on the calibration inputs, up to H's scale.
func outputError(h *Hessian, w, w2 []float32, out, in int) float64 {
	var e float64
	d := make([]float64, in)
	for r := range out {
		for j := range in {
			d[j] = float64(w2[r*in+j]) - float64(w[r*in+j])
		}
		for i := range in {
			for j := range in {
				e += d[i] * h.H[i*in+j] * d[j]
			}
		}
	}
	return e
}
