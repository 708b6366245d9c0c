package nn

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/unipruning/unipruning/model"
)

func storiesShapeConfig() *model.Config {
	return &model.Config{Arch: "llama2c", Dim: 64, Hidden: 172, Layers: 5, Heads: 8, KVHeads: 4, HeadDim: 8,
		Vocab: 512, MaxSeq: 1024, NormEps: 1e-5, RopeTheta: 10000, RopeInterleaved: true, TiedHead: true}
}

// synth100M is a ~110M-parameter LLaMA shape (GPT-2-small-like widths,
// LLaMA vocabulary): 12 layers, dim 768, MLP 2048, 12 heads, 32000 tokens.
func synth100M() *model.Config {
	return &model.Config{Arch: "LlamaForCausalLM", Dim: 768, Hidden: 2048, Layers: 12, Heads: 12, KVHeads: 12, HeadDim: 64,
		Vocab: 32000, MaxSeq: 1024, NormEps: 1e-5, RopeTheta: 10000}
}

// BenchmarkSgemm measures GFLOP/s on square products of: nn's Gemm (what
// the engine uses: OpenBLAS single-threaded per 64-row chunk on
// GOMAXPROCS goroutines when built with it), each compiled kernel called
// directly, and OpenBLAS with its own threads (the reference).
func BenchmarkSgemm(b *testing.B) {
	for _, n := range []int{1024, 2048, 4096} {
		b.Run(fmt.Sprintf("nn.Gemm/%d", n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			x, y, z := randSlice(rng, n*n), randSlice(rng, n*n), make([]float32, n*n)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				Gemm(false, true, n, n, n, 1, x, n, y, n, 0, z, n)
			}
			b.ReportMetric(2*float64(n)*float64(n)*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		if ob, ok := kernel("openblas"); ok {
			b.Run(fmt.Sprintf("openblas-threads/%d", n), func(b *testing.B) {
				SetBLASThreads(runtime.GOMAXPROCS(0))
				defer SetBLASThreads(1)
				rng := rand.New(rand.NewPCG(1, 1))
				x, y, z := randSlice(rng, n*n), randSlice(rng, n*n), make([]float32, n*n)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					ob.Sgemm(tr(false), tr(true), n, n, n, 1, x, n, y, n, 0, z, n)
				}
				b.ReportMetric(2*float64(n)*float64(n)*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
		for _, name := range Kernels() {
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(1, 1))
				x, y, z := randSlice(rng, n*n), randSlice(rng, n*n), make([]float32, n*n)
				k, _ := kernel(name)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					k.Sgemm(tr(false), tr(true), n, n, n, 1, x, n, y, n, 0, z, n)
				}
				b.ReportMetric(2*float64(n)*float64(n)*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

func benchForward(b *testing.B, c *model.Config, batch, t int) {
	w := RandomWeights[float32](c, 1)
	s := NewStage(w)
	tokens := randomTokens(batch*t, c.Vocab, 1)
	tg := Targets(tokens, batch, t)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h, err := s.Forward(tokens, nil, batch, t, false)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, _, err := s.HeadLoss(h, tg, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch*t)/b.Elapsed().Seconds(), "tokens/s")
}

func BenchmarkForwardStories260K(b *testing.B) { benchForward(b, storiesShapeConfig(), 16, 256) }
func BenchmarkForwardSynth100M(b *testing.B)   { benchForward(b, synth100M(), 4, 256) }

// benchTrain measures forward+backward tokens/s, the memory the stage
// holds, and the share of wall time spent in matrix products (measured in
// a second pass on one thread, where the shares add up).
func benchTrain(b *testing.B, c *model.Config, t int) {
	w := RandomWeights[float32](c, 1)
	s := NewStage(w)
	s.EnableGrad(false)
	tokens := randomTokens(t, c.Vocab, 2)
	tg := Targets(tokens, 1, t)
	step := func() {
		s.ZeroGrad()
		h, err := s.Forward(tokens, nil, 1, t, true)
		if err != nil {
			b.Fatal(err)
		}
		_, _, dh, err := s.HeadLoss(h, tg, true)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Backward(dh); err != nil {
			b.Fatal(err)
		}
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	step()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		step()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*t)/b.Elapsed().Seconds(), "tokens/s")
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MB-activations+grads")
	b.ReportMetric(float64(after.HeapAlloc)/(1<<20), "MB-heap")
	prev := runtime.GOMAXPROCS(1)
	TimeGemm(true)
	start := time.Now()
	step()
	share := GemmTime().Seconds() / time.Since(start).Seconds()
	TimeGemm(false)
	runtime.GOMAXPROCS(prev)
	b.ReportMetric(100*share, "%matmul")
}

func BenchmarkTrainStories260K(b *testing.B) {
	for _, t := range []int{256, 1024} {
		b.Run(fmt.Sprint("seq", t), func(b *testing.B) { benchTrain(b, storiesShapeConfig(), t) })
	}
}

func BenchmarkTrainSynth100M(b *testing.B) {
	for _, t := range []int{256, 1024} {
		b.Run(fmt.Sprint("seq", t), func(b *testing.B) { benchTrain(b, synth100M(), t) })
	}
}
