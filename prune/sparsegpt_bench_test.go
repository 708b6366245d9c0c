package prune

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// sgptBench times SparseGPT at 50% on one out×in matrix, split into the
// Hessian factorisation (shared by q/k/v and by gate/up in a real run) and
// the column sweep. The Hessian is the Kac–Murdock–Szegő matrix 0.5^|i−j|:
// the run time does not depend on its values, and it is PD and cheap to
// build, unlike an XᵀX of more than in tokens.
func sgptBench(b *testing.B, out, in int, cfg SparseGPTConfig) {
	h := NewHessian(in)
	for i := range in {
		for j := range in {
			h.H[i*in+j] = math.Pow(0.5, math.Abs(float64(i-j)))
		}
	}
	rng := rand.New(rand.NewPCG(1, 1))
	src := make([]float32, out*in)
	for i := range src {
		src[i] = float32(0.02 * rng.NormFloat64())
	}
	w := make([]float32, out*in)
	var invTime, sweepTime time.Duration
	for b.Loop() {
		copy(w, src)
		t0 := time.Now()
		inv, err := NewSGPTInverse(h, cfg.PercDamp)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := SparseGPTWithInverse(w, out, in, inv, cfg); err != nil {
			b.Fatal(err)
		}
		invTime += t1.Sub(t0)
		sweepTime += time.Since(t1)
	}
	b.ReportMetric(invTime.Seconds()/float64(b.N), "inverse-s/op")
	b.ReportMetric(sweepTime.Seconds()/float64(b.N), "sweep-s/op")
}

func BenchmarkSparseGPT4096x4096(b *testing.B) {
	sgptBench(b, 4096, 4096, SparseGPTConfig{Sparsity: 0.5})
}

func BenchmarkSparseGPT4096x4096NM24(b *testing.B) {
	sgptBench(b, 4096, 4096, SparseGPTConfig{N: 2, M: 4})
}

// 11008×4096: LLaMA-7B gate/up projections (out = 11008).
func BenchmarkSparseGPT11008x4096(b *testing.B) {
	sgptBench(b, 11008, 4096, SparseGPTConfig{Sparsity: 0.5})
}

// 4096×11008: LLaMA-7B down projection (in = 11008, Hessian 11008²).
func BenchmarkSparseGPT4096x11008(b *testing.B) {
	sgptBench(b, 4096, 11008, SparseGPTConfig{Sparsity: 0.5})
}

// BenchmarkHessianAdd4096 adds one 2048-token window to a 4096² Hessian.
func BenchmarkHessianAdd4096(b *testing.B) {
	const n, tokens = 4096, 2048
	rng := rand.New(rand.NewPCG(2, 2))
	x := make([]float32, tokens*n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	h := NewHessian(n)
	for b.Loop() {
		h.Add(x, tokens, n, 1)
	}
}
