// Command pipecost measures the rates of internal/stepcost's model on
// this machine (one core: GOMAXPROCS 1, OpenBLAS single-threaded) and
// prints the predicted search step time for S shards and chunk sizes,
// with the shard plan a chunked search uses (coordinator.PlanSpec); with
// --project it prints the same for LLaMA-2-7B on nodes whose speed is
// given relative to one core here (a projection, not a measurement).
//
//	go run -tags openblas ./tools/pipecost --model DIR --seqlen 1024 --chunks 0,128 --shards 1,2
//	go run -tags openblas ./tools/pipecost --project --nodes 8 --node-cores 32 --seqlen 4096 --chunks 0,512
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/unipruning/unipruning/coordinator"
	"github.com/unipruning/unipruning/internal/seeded"
	"github.com/unipruning/unipruning/internal/stepcost"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/prune"
)

func main() {
	var (
		modelPath, chunks, shards  string
		seqlen, nodes, window      int
		project                    bool
		nodeCores, linkBW, linkLat float64
		overhead                   float64
	)
	flag.StringVar(&modelPath, "model", "", "model whose shapes to measure and predict (HF directory or llama2.c .bin)")
	flag.IntVar(&seqlen, "seqlen", 1024, "window length")
	flag.StringVar(&chunks, "chunks", "0,128", "chunk sizes (0: one chunk per window)")
	flag.StringVar(&shards, "shards", "1,2", "shard counts to predict")
	flag.IntVar(&window, "measure-window", 0, "window used to measure the rates (default --seqlen)")
	flag.Float64Var(&linkBW, "link-bw", 451e6, "link bandwidth, bytes/s (default: NATS loopback streams, docs/benchmarks.md)")
	flag.Float64Var(&linkLat, "link-latency", 3e-4, "seconds per message on the link")
	flag.Float64Var(&overhead, "step-overhead", 0.004, "fixed seconds per step: control calls and threshold rounds (docs/benchmarks.md: 3–4 ms)")
	flag.BoolVar(&project, "project", false, "project LLaMA-2-7B (32 layers, dim 4096, MLP 11008, untied 32000 head) instead of --model")
	flag.IntVar(&nodes, "nodes", 8, "--project: shards (one per node)")
	flag.Float64Var(&nodeCores, "node-cores", 32, "--project: a node's speed in cores of this machine (rates scale linearly: optimistic)")
	flag.Parse()
	runtime.GOMAXPROCS(1)
	if err := nn.UseKernel(nn.BestKernel()); err != nil {
		fail(err)
	}
	cfg, err := config(modelPath, project)
	if err != nil {
		fail(err)
	}
	if window == 0 {
		window = seqlen
	}
	// The rates are measured on the model's own shapes (one layer and the
	// head), or on the 110M shape for a projection.
	mcfg := cfg
	if project {
		mcfg = &model.Config{Arch: "LlamaForCausalLM", Dim: 768, Hidden: 2048, Layers: 12, Heads: 12, KVHeads: 12,
			HeadDim: 64, Vocab: 32000, MaxSeq: 4096, NormEps: 1e-5, RopeTheta: 10000}
		window = min(window, 1024)
	}
	cs := parseInts(chunks)
	r := measure(mcfg, window, cs)
	r.LinkBandwidth, r.LinkLatency, r.StepOverhead = linkBW, linkLat, overhead
	fmt.Printf("rates (one core, %s, window %d): layer %.1f GMAC/s, head %.1f GMAC/s, backward ×%.2f, head backward ×%.2f, update %.2f ns/weight\n",
		nn.ActiveKernel(), window, r.LayerMACs/1e9, r.HeadMACs/1e9, r.BackwardFactor, r.HeadBackwardFactor, r.UpdatePerWeight*1e9)
	ss := parseInts(shards)
	if project {
		r.LayerMACs *= nodeCores
		r.HeadMACs *= nodeCores
		r.UpdatePerWeight /= nodeCores
		ss = []int{1, nodes}
		fmt.Printf("PROJECTION for LLaMA-2-7B: nodes = %.0f cores of this machine each, link %.2g B/s, %.2g s latency\n", nodeCores, linkBW, linkLat)
	}
	fmt.Printf("%-7s %-6s %-12s %10s %10s %10s %10s %8s\n", "shards", "chunk", "layers", "step_s", "pass_s", "busy_s", "update_s", "speedup")
	for _, c := range cs {
		var base float64
		for _, s := range ss {
			spec := job.Spec{Mode: job.ModeGlobal, Seqlen: seqlen, Chunk: c}
			parts, err := coordinator.PlanSpec(cfg, s, spec)
			if err != nil {
				fail(err)
			}
			p, err := stepcost.Predict(r, stepcost.Step{Cfg: cfg, Parts: parts, Seqlen: seqlen, Chunk: c, Train: true})
			if err != nil {
				fail(err)
			}
			if base == 0 {
				base = p.Seconds
			}
			fmt.Printf("%-7d %-6d %-12s %10.2f %10.2f %10.2f %10.2f %8.2f\n", s, c, layout(parts), p.Seconds, p.Pass, p.Busy, p.Update, base/p.Seconds)
		}
	}
}

func config(path string, project bool) (*model.Config, error) {
	if project {
		return &model.Config{Arch: "LlamaForCausalLM", Dim: 4096, Hidden: 11008, Layers: 32, Heads: 32, KVHeads: 32,
			HeadDim: 128, Vocab: 32000, MaxSeq: 4096, NormEps: 1e-5, RopeTheta: 10000}, nil
	}
	if path == "" {
		return nil, fmt.Errorf("--model or --project is required")
	}
	ck, err := model.Open(path, "")
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	return ck.Config, nil
}

// measure times one decoder layer's chunked forward and backward, the
// head's, and the per-weight update on this model's shapes.
func measure(c *model.Config, window int, chunks []int) stepcost.Rates {
	chunk := window
	for _, x := range chunks {
		if x > 0 {
			chunk = min(chunk, x) // the rates of the smallest chunk (smaller products run slower)
		}
	}
	one := *c
	one.Layers = 1
	w := nn.RandomWeights[float32](&one, 1)
	st := nn.NewStage(nn.SubWeights(w, nn.Part{From: 0, To: 1}))
	st.EnableGrad(false)
	ch, err := nn.NewChunked(st, window, chunk)
	if err != nil {
		fail(err)
	}
	x := make([]float32, window*c.Dim)
	for i := range x {
		x[i] = float32(i%7) * 0.1
	}
	var fwd, bwd time.Duration
	for rep := 0; rep < 2; rep++ { // the first pass touches the buffers
		fwd, bwd = 0, 0
		for i := 0; i < ch.Chunks(); i++ {
			p0, p1 := ch.Span(i)
			t0 := time.Now()
			if _, err := ch.Forward(i, nil, x[p0*c.Dim:p1*c.Dim], true); err != nil {
				fail(err)
			}
			fwd += time.Since(t0)
		}
		for i := ch.Chunks() - 1; i >= 0; i-- {
			p0, p1 := ch.Span(i)
			t0 := time.Now()
			if _, err := ch.Backward(i, x[p0*c.Dim:p1*c.Dim]); err != nil {
				fail(err)
			}
			bwd += time.Since(t0)
		}
	}
	macs, _ := stepcost.ChunkMACs(c, nn.Part{From: 0, To: 1}, 0, window)
	r := stepcost.Rates{LayerMACs: macs / fwd.Seconds(), BackwardFactor: bwd.Seconds() / fwd.Seconds()}
	r.HeadMACs, r.HeadBackwardFactor = measureHead(c, w, chunk)
	r.UpdatePerWeight = measureUpdate(c)
	return r
}

func measureHead(c *model.Config, w *nn.Weights[float32], rows int) (float64, float64) {
	hs := nn.NewStage(nn.SubWeights(w, nn.Part{From: 1, To: 1, Head: true}))
	hs.EnableGrad(false)
	ch, err := nn.NewChunked(hs, rows, rows)
	if err != nil {
		fail(err)
	}
	h := make([]float32, rows*c.Dim)
	for i := range h {
		h[i] = float32(i%5) * 0.1
	}
	tg := make([]int32, rows)
	for i := range tg {
		tg[i] = int32(i % c.Vocab)
	}
	var f, g time.Duration
	for rep := 0; rep < 2; rep++ {
		t0 := time.Now()
		if _, _, err := ch.HeadLoss(h, tg, rows, false); err != nil {
			fail(err)
		}
		f = time.Since(t0)
		t0 = time.Now()
		if _, _, err := ch.HeadLoss(h, tg, rows, true); err != nil {
			fail(err)
		}
		g = time.Since(t0)
	}
	_, macs := stepcost.ChunkMACs(c, nn.Part{From: 1, To: 1, Head: true}, 0, rows)
	return macs / f.Seconds(), (g - f).Seconds() / f.Seconds()
}

// measureUpdate times what a shard does per target weight after the
// backward, on one MLP matrix: stochria score, mean normalisation,
// clipping, AdamW, z accumulation, two histogram rounds and Γ.
func measureUpdate(c *model.Config) float64 {
	out, in := c.Hidden, c.Dim
	n := out * in
	wt, g, m, v, sc := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range wt {
		wt[i], g[i] = float32(i%13)*0.01-0.06, float32(i%11)*0.001
	}
	stats := prune.NewStats(in)
	x := make([]float32, 64*in)
	for i := range x {
		x[i] = float32(i%9) * 0.1
	}
	stats.Add(x, 64, in)
	mir := prune.NewMirror(n)
	part := prune.SlicePartition{Values: [][]float32{mir.Z}}
	hist := make([]uint64, prune.HistBuckets)
	var d time.Duration
	for k := 1; k <= 3; k++ {
		t0 := time.Now()
		if err := prune.Score(prune.MetricStochRIA, sc, wt, out, in, stats, seeded.New(0, uint64(k))); err != nil {
			fail(err)
		}
		prune.NormalizeMean(sc)
		nn.Scale(g, 0.5)
		nn.AdamW(wt, g, m, v, 1e-4, k, nn.SearchAdam)
		mir.Accumulate(sc, 0.01)
		for round := 0; round < 2; round++ {
			if err := part.Histogram(prune.HistQuery{Round: round}, hist); err != nil {
				fail(err)
			}
		}
		mir.Shrink(1e-4, int32(k))
		d = time.Since(t0)
	}
	return d.Seconds() / float64(n)
}

func layout(parts []nn.Part) string {
	var s []string
	for _, p := range parts {
		s = append(s, strconv.Itoa(p.To-p.From))
	}
	return strings.Join(s, "+")
}

func parseInts(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			fail(fmt.Errorf("%q: %w", s, err))
		}
		out = append(out, v)
	}
	return out
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "pipecost:", err)
	os.Exit(1)
}
