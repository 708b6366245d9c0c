package layerwise

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/prune"
)

// llama7BLayer is one decoder layer with LLaMA-7B's shapes (4096 hidden,
// 11008 MLP, 32 heads) and a small vocabulary (the embedding is not
// pruned and not part of the per-layer cost).
func llama7BLayer(layers int) *model.Config {
	return &model.Config{Arch: "LlamaForCausalLM", Dim: 4096, Hidden: 11008, Layers: layers, Heads: 32, KVHeads: 32,
		HeadDim: 128, Vocab: 512, MaxSeq: 4096, NormEps: 1e-5, RopeTheta: 10000, TiedHead: true, DType: "F32"}
}

func writeSynthetic(b *testing.B, c *model.Config) string {
	dir := filepath.Join(b.TempDir(), "m")
	os.MkdirAll(dir, 0o755)
	var ts []model.HFTensor
	add := func(name string, shape []int, std float64) {
		seed := uint64(len(ts))
		ts = append(ts, model.HFTensor{Name: name, Shape: shape, Fill: func(dst []float32) error {
			r := rand.New(rand.NewPCG(seed, 7))
			for i := range dst {
				dst[i] = float32(std * r.NormFloat64())
			}
			if std == 0 {
				for i := range dst {
					dst[i] = 1
				}
			}
			return nil
		}})
	}
	add(model.EmbedName, []int{c.Vocab, c.Dim}, 1)
	for l := 0; l < c.Layers; l++ {
		add(model.AttnNormName(l), []int{c.Dim}, 0)
		add(model.MLPNormName(l), []int{c.Dim}, 0)
		for m := model.Matrix(0); m < model.NumMatrices; m++ {
			o, i := m.Shape(c)
			add(model.Target{Layer: l, Matrix: m}.TensorName(), []int{o, i}, 0.02)
		}
	}
	add(model.NormName, []int{c.Dim}, 0)
	if err := model.SaveHF(dir, c, ts, 0); err != nil {
		b.Fatal(err)
	}
	return dir
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkLayer7B reports seconds per decoder layer of every method on
// LLaMA-7B-shaped layers. The calibration size is small by default
// (UNIPRUNING_BENCH_WINDOWS × UNIPRUNING_BENCH_SEQLEN tokens, default
// 4 × 512); collection and the forward passes scale linearly with it,
// the mask/SparseGPT solve does not.
func BenchmarkLayer7B(b *testing.B) {
	windows, seqlen := envInt("UNIPRUNING_BENCH_WINDOWS", 4), envInt("UNIPRUNING_BENCH_SEQLEN", 512)
	c := llama7BLayer(1)
	dir := writeSynthetic(b, c)
	ck, err := model.Open(dir, "")
	if err != nil {
		b.Fatal(err)
	}
	defer ck.Close()
	r := rand.New(rand.NewPCG(1, 1))
	ws := make([][]int32, windows)
	for i := range ws {
		ws[i] = make([]int32, seqlen)
		for j := range ws[i] {
			ws[i][j] = int32(r.IntN(c.Vocab))
		}
	}
	for _, method := range []Method{Magnitude, Wanda, RIA, SparseGPT} {
		b.Run(fmt.Sprintf("%s/%dx%d", method, windows, seqlen), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				start := time.Now()
				_, err := Run(ck, ws, Config{Method: method, Sparsity: 0.5, Batch: 1},
					func(model.Target, []float32, *prune.Mask) error { return nil }, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(time.Since(start).Seconds(), "s/layer")
			}
		})
	}
}
