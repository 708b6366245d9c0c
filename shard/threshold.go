package shard

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/prune"
)

// partition exposes |z| of every owned target to the exact selection.
func (wk *Worker) partition() *prune.SlicePartition {
	p := &prune.SlicePartition{}
	for _, tg := range wk.ts {
		p.Values = append(p.Values, tg.mir.Z)
		p.Shapes = append(p.Shapes, [2]int{tg.lin.Out, tg.lin.In})
	}
	return p
}

// Count is the number of target weights the shard owns.
func (wk *Worker) Count() uint64 {
	var n uint64
	for _, tg := range wk.ts {
		n += uint64(len(tg.mir.Z))
	}
	return n
}

// Histogram answers one round of the model-wide radix selection over |z|.
//
// The owned matrices are split into contiguous runs histogrammed on
// parallel goroutines into private buffers, then summed: integer counts do
// not depend on the split. On any error (a NaN) the whole partition is
// histogrammed again in order, so the error names the first bad value as
// the sequential pass does.
func (wk *Worker) Histogram(ctx context.Context, q prune.HistQuery, dst []uint64) error {
	defer wk.clock.add(&wk.clock.p.Threshold, time.Now())
	p := wk.partition()
	workers := min(len(p.Values), runtime.GOMAXPROCS(0))
	if workers < 2 || len(dst) != prune.HistBuckets {
		return p.Histogram(q, dst)
	}
	for len(wk.hist) < workers {
		wk.hist = append(wk.hist, make([]uint64, prune.HistBuckets))
	}
	runs := splitRuns(p.Values, workers)
	err := parallel(len(runs), func(i int) error {
		sub := prune.SlicePartition{Values: p.Values[runs[i][0]:runs[i][1]], Shapes: p.Shapes[runs[i][0]:runs[i][1]]}
		return sub.Histogram(q, wk.hist[i])
	})
	if err != nil {
		return p.Histogram(q, dst)
	}
	copy(dst, wk.hist[0])
	for _, h := range wk.hist[1:len(runs)] {
		for b, c := range h {
			dst[b] += c
		}
	}
	return nil
}

// splitRuns cuts the matrices into at most n contiguous runs of about
// equal numbers of values.
func splitRuns(vals [][]float32, n int) [][2]int {
	var total int
	for _, v := range vals {
		total += len(v)
	}
	var runs [][2]int
	start, acc := 0, 0
	for i, v := range vals {
		acc += len(v)
		if len(runs) < n-1 && acc*n >= total*(len(runs)+1) {
			runs = append(runs, [2]int{start, i + 1})
			start = i + 1
		}
	}
	if start < len(vals) {
		runs = append(runs, [2]int{start, len(vals)})
	}
	return runs
}

// CountEqual counts owned |z| keys equal to key.
func (wk *Worker) CountEqual(ctx context.Context, key uint32) (uint64, error) {
	defer wk.clock.add(&wk.clock.p.Threshold, time.Now())
	return wk.partition().CountEqual(key)
}

// ApplyTau finishes step k: Γ ← sign(z)·max(|z| − τ, 0). In the global and
// frozen modes τ is the model-wide threshold the leader selected; in the
// reference mode each matrix uses its own exact λ-quantile of |z| and tau
// is ignored.
func (wk *Worker) ApplyTau(ctx context.Context, k int, tau float32) error {
	if k != wk.step+1 {
		return fmt.Errorf("shard is at step %d, asked to apply τ of step %d", wk.step, k)
	}
	// The per-matrix quantiles of the reference mode count as the mirror
	// update: they replace the model-wide threshold rounds.
	defer wk.clock.add(&wk.clock.p.Mirror, time.Now())
	err := parallel(len(wk.ts), func(i int) error {
		tg := wk.ts[i]
		t := tau
		if wk.spec.Mode == job.ModeReference {
			var err error
			if t, err = prune.AbsQuantile(tg.mir.Z, wk.spec.Lambda); err != nil {
				return fmt.Errorf("%s: %w", tg.t, err)
			}
		}
		tg.mir.Shrink(t, int32(k))
		return nil
	})
	if err == nil {
		wk.step = k
	}
	return err
}
