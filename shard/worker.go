// Package shard is the search-stage worker (DESIGN §3.1): it owns a
// contiguous range of decoder layers (the first shard also the embedding,
// the last also the final norm and LM head), keeps their weights, Adam
// moments and mirror-descent state, runs forward/backward for them, answers
// threshold histogram queries and writes checkpoints. The same Worker runs
// in one process (Local) and in a cluster (behind a shardrpc.Server).
package shard

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"github.com/unipruning/unipruning/eval"
	"github.com/unipruning/unipruning/internal/seeded"
	"github.com/unipruning/unipruning/internal/sysmem"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/provenance"
	"github.com/unipruning/unipruning/prune"
	"github.com/unipruning/unipruning/shardrpc"
)

// target is the per-matrix state of the search.
type target struct {
	t     model.Target
	lin   *nn.Linear[float32] // W^k (aliases the stage's weights)
	grad  []float32
	m, v  []float32 // Adam moments (nil in frozen mode)
	mir   *prune.Mirror
	stats *prune.Stats // this step's input statistics (shared by matrices reading the same input)
}

// Worker runs the search stage for its part of the model.
type Worker struct {
	spec    job.Spec
	part    nn.Part
	ck      *model.Checkpoint
	w       *nn.Weights[float32]
	st      *nn.Stage[float32]
	ts      []*target
	groups  map[int]*[4]*prune.Stats // layer → input-group statistics
	windows [][]int32                // calibration windows (first and last shard only)
	pipe    shardrpc.Pipe
	step    int // last step fully applied (Γ updated)
	// scores[w] is goroutine w's buffer for one matrix's saliency S^k:
	// scores are consumed as soon as they are computed, so the worker
	// holds GOMAXPROCS of them instead of one per target.
	scores [][]float32
	chunks *chunkRun
	hist   [][]uint64 // per-goroutine threshold histograms
	clock  phaseClock
}

// NewWorker loads the part's weights and initialises its state.
func NewWorker(spec job.Spec, part nn.Part, pipe shardrpc.Pipe) (*Worker, error) {
	spec.Defaults()
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	tuneGC()
	ck, err := model.Open(spec.Model, spec.Tokenizer)
	if err != nil {
		return nil, job.Invalid(err) // no retry can make the model appear
	}
	wk := &Worker{spec: spec, part: part, ck: ck, pipe: pipe, groups: map[int]*[4]*prune.Stats{}}
	if err := wk.load(); err != nil {
		ck.Close()
		return nil, err
	}
	return wk, nil
}

func (wk *Worker) load() error {
	var err error
	if wk.w, err = nn.Load[float32](wk.ck, wk.part); err != nil {
		return err
	}
	wk.st = nn.NewStage(wk.w)
	if wk.spec.Trains() {
		wk.st.EnableGrad(false)
	}
	wk.st.Observer = observer{wk}
	c := wk.ck.Config
	for l := wk.part.From; l < wk.part.To; l++ {
		g := &[4]*prune.Stats{prune.NewStats(c.Dim), prune.NewStats(c.QDim()), prune.NewStats(c.Dim), prune.NewStats(c.Hidden)}
		wk.groups[l] = g
		for m := model.Matrix(0); m < model.NumMatrices; m++ {
			wk.ts = append(wk.ts, wk.newTarget(model.Target{Layer: l, Matrix: m}, g[model.InputGroup(m)]))
		}
	}
	if (wk.part.Embed || wk.part.Head) && wk.windows == nil {
		return wk.loadWindows()
	}
	return nil
}

func (wk *Worker) newTarget(t model.Target, st *prune.Stats) *target {
	lin := &wk.w.Blocks[t.Layer].Lin[t.Matrix]
	n := lin.Out * lin.In
	tg := &target{t: t, lin: lin, mir: prune.NewMirror(n), stats: st}
	if wk.spec.Trains() {
		tg.grad = wk.st.G.Blocks[t.Layer].Lin[t.Matrix].W
		tg.m, tg.v = make([]float32, n), make([]float32, n)
	}
	return tg
}

// loadWindows draws the calibration windows: Steps of them, step k using
// window k−1. Every shard that needs them draws the same ones.
func (wk *Worker) loadWindows() error {
	// Input errors: the coordinator fails the job instead of retrying.
	tok, err := wk.ck.LoadTokenizer()
	if err != nil {
		return job.Invalid(err)
	}
	if wk.spec.Seqlen > wk.ck.Config.MaxSeq {
		return job.Invalidf("seqlen %d exceeds the model's context of %d", wk.spec.Seqlen, wk.ck.Config.MaxSeq)
	}
	wk.windows, _, err = eval.CalibWindows(wk.spec.CalibFormat, wk.spec.CalibPath, tok, wk.spec.Steps, wk.spec.Seqlen, wk.spec.Seed)
	return job.Invalid(err)
}

// Close releases the checkpoint files.
func (wk *Worker) Close() error { return wk.ck.Close() }

// Part returns what the worker owns.
func (wk *Worker) Part() nn.Part { return wk.part }

// Config is the model's configuration.
func (wk *Worker) Config() *model.Config { return wk.ck.Config }

// LastStep is the last step whose Γ update was applied.
func (wk *Worker) LastStep() int { return wk.step }

// observer feeds the step's activation statistics; shared inputs (q/k/v,
// gate/up) are counted once.
type observer struct{ wk *Worker }

func (o observer) Observe(layer int, m model.Matrix, x []float32, rows, cols int) {
	if !model.GroupLeader(m) {
		return
	}
	o.wk.groups[layer][model.InputGroup(m)].Add(x, rows, cols)
}

// Step runs the forward (and, when training, backward) pass of step k:
// activations arrive from / go to the neighbouring shards through the pipe.
func (wk *Worker) Step(ctx context.Context, k int) (shardrpc.StepResult, error) {
	res := shardrpc.StepResult{Step: k, From: wk.part.From}
	if k != wk.step+1 {
		return res, fmt.Errorf("shard is at step %d, asked to run step %d", wk.step, k)
	}
	for _, g := range wk.groups {
		for _, s := range g {
			s.Reset()
		}
	}
	if wk.spec.Chunk > 0 {
		return wk.stepChunked(ctx, k, res)
	}
	t0 := time.Now()
	h, err := wk.forward(ctx, k)
	if err != nil {
		return res, err
	}
	train := wk.spec.Trains()
	var dh []float32
	if wk.part.Head {
		win := wk.windows[k-1]
		res.Loss, res.Count, dh, err = wk.st.HeadLoss(h, nn.Targets(win, 1, len(win)), train)
		if err != nil {
			return res, err
		}
	}
	wk.clock.add(&wk.clock.p.Forward, t0)
	if !train {
		res.PeakRSS, _ = sysmem.PeakRSS()
		return res, nil
	}
	if !wk.part.Head {
		if dh, err = wk.pipe.RecvBackward(ctx, k); err != nil {
			return res, err
		}
	}
	t0 = time.Now()
	defer wk.clock.add(&wk.clock.p.Backward, t0)
	wk.st.ZeroGrad()
	dx, err := wk.st.Backward(dh)
	if err != nil {
		return res, err
	}
	if !wk.part.Embed {
		if err := wk.pipe.SendBackward(ctx, k, dx); err != nil {
			return res, err
		}
	}
	res.GradSumSq = wk.gradSumSq()
	res.PeakRSS, _ = sysmem.PeakRSS()
	return res, nil
}

func (wk *Worker) forward(ctx context.Context, k int) ([]float32, error) {
	t := wk.spec.Seqlen
	var tokens []int32
	var x []float32
	var err error
	if wk.part.Embed {
		tokens = wk.windows[k-1]
	} else if x, err = wk.pipe.RecvForward(ctx, k); err != nil {
		return nil, err
	}
	h, err := wk.st.Forward(tokens, x, 1, t, wk.spec.Trains())
	if err != nil {
		return nil, err
	}
	if !wk.part.Head {
		return h, wk.pipe.SendForward(ctx, k, h)
	}
	return h, nil
}

func (wk *Worker) gradSumSq() []float64 {
	out := make([]float64, wk.part.To-wk.part.From)
	for _, tg := range wk.ts {
		out[tg.t.Layer-wk.part.From] += nn.SumSquares(tg.grad)
	}
	return out
}

// Update computes this step's saliency S^k from the pre-update weights,
// then (when training) clips, applies AdamW and the optional N:M proximal
// step, and accumulates z ← z + κ(S^k − Γ). Matrices are independent, so
// they run in parallel without affecting the result.
func (wk *Worker) Update(ctx context.Context, k int, lr, clipCoef float64) error {
	if k != wk.step+1 {
		return fmt.Errorf("shard is at step %d, asked to update step %d", wk.step, k)
	}
	workers := min(len(wk.ts), runtime.GOMAXPROCS(0))
	for len(wk.scores) < workers {
		wk.scores = append(wk.scores, nil)
	}
	start := time.Now()
	defer func() { wk.clock.endUpdate(time.Since(start)) }()
	return parallelW(len(wk.ts), workers, func(w, i int) error {
		tg := wk.ts[i]
		n := len(tg.lin.W)
		if cap(wk.scores[w]) < n {
			wk.scores[w] = make([]float32, n)
		}
		return wk.updateTarget(tg, wk.scores[w][:n], k, lr, clipCoef)
	})
}

// updateTarget runs the update of one matrix: S^k into scores (the
// pre-update weights), clipping fused into AdamW, ProxSparse, then
// normalisation fused into z ← z + κ(S^k − Γ).
func (wk *Worker) updateTarget(tg *target, scores []float32, k int, lr, clipCoef float64) error {
	out, in := tg.lin.Out, tg.lin.In
	var rng *rand.Rand
	if wk.spec.Metric.NeedsRNG() {
		rng = seeded.New(wk.spec.Seed, seeded.Metric, uint64(k), uint64(tg.t.Layer), uint64(tg.t.Matrix))
	}
	t0 := time.Now()
	if err := prune.Score(wk.spec.Metric, scores, tg.lin.W, out, in, tg.stats, rng); err != nil {
		return err
	}
	t1 := time.Now()
	if wk.spec.Trains() {
		nn.AdamWClipped(tg.lin.W, tg.grad, tg.m, tg.v, lr, k, nn.SearchAdam, clipCoef)
		if wk.spec.Lambda2 > 0 && in%4 == 0 {
			if err := prune.ProxNM(tg.lin.W, out, in, wk.spec.Lambda2); err != nil {
				return err
			}
		}
	}
	t2 := time.Now()
	tg.mir.AccumulateNormalized(scores, float32(wk.spec.Kappa))
	wk.clock.addPar(t1.Sub(t0), t2.Sub(t1), time.Since(t2))
	return nil
}

// parallel runs f(0..n-1) on GOMAXPROCS goroutines and returns the first
// error (by index).
func parallel(n int, f func(i int) error) error {
	return parallelW(n, min(n, runtime.GOMAXPROCS(0)), func(_, i int) error { return f(i) })
}

// parallelW runs f(w, 0..n-1) on the given number of goroutines, w being
// the goroutine's index (for its scratch buffers), and returns the first
// error by index.
func parallelW(n, workers int, f func(w, i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = f(w, i)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Calibration describes the calibration data a search of spec draws (file,
// sha256, windows, seed, tokenizer), for the Γ store's manifest. It opens
// the model's tokenizer and samples the windows as the workers do.
func Calibration(spec job.Spec) (*provenance.Data, error) {
	ck, err := model.Open(spec.Model, spec.Tokenizer)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	tok, err := ck.LoadTokenizer()
	if err != nil {
		return nil, err
	}
	_, man, err := eval.CalibWindows(spec.CalibFormat, spec.CalibPath, tok, spec.Steps, spec.Seqlen, spec.Seed)
	return man, err
}
