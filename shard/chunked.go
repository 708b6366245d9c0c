package shard

import (
	"context"
	"time"

	"github.com/unipruning/unipruning/internal/sysmem"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/shardrpc"
)

// chunkRun is the worker's state for sequence-pipelined steps (spec.Chunk,
// issue 16): the chunked stage and the head's output gradient of the
// window, kept from the forward chunks for the backward ones.
type chunkRun struct {
	ch *nn.Chunked[float32]
	dh []float32
}

// stageMemory is the stage's share of PlanMemory: nn.PlanStageMemory, or
// for a chunked search nn.PlanChunkedMemory plus the window's output
// gradient the head's shard keeps (chunkRun.dh).
func stageMemory(c *model.Config, spec job.Spec, p nn.Part, workers int) nn.StageMemory {
	train := spec.Trains()
	if spec.Chunk <= 0 || spec.Chunk >= spec.Seqlen {
		return nn.PlanStageMemory[float32](c, p, 1, spec.Seqlen, workers, train)
	}
	m := nn.PlanChunkedMemory[float32](c, p, spec.Seqlen, spec.Chunk, workers, train)
	if p.Head && train {
		m.Workspace += 4 * int64(spec.Seqlen) * int64(c.Dim)
	}
	return m
}

// Pipe tags of chunked steps. A pipe orders messages by one increasing
// number; chunk c of step k (of nc chunks) is message (k−1)·nc + c + 1
// forward and (k−1)·nc + (nc−1−c) + 1 backward, since the backward runs
// the chunks last first. With one chunk both are k, the unchunked tags.
func fwdTag(k, c, nc int) int { return (k-1)*nc + c + 1 }
func bwdTag(k, c, nc int) int { return (k-1)*nc + (nc - 1 - c) + 1 }

// chunkState returns the chunked stage over the worker's current stage
// (made again after a reload replaced the stage).
func (wk *Worker) chunkState() (*chunkRun, error) {
	if wk.chunks != nil && wk.chunks.ch.S == wk.st {
		return wk.chunks, nil
	}
	ch, err := nn.NewChunked(wk.st, wk.spec.Seqlen, wk.spec.Chunk)
	if err != nil {
		return nil, err
	}
	r := &chunkRun{ch: ch}
	if wk.part.Head && wk.spec.Trains() {
		r.dh = make([]float32, wk.spec.Seqlen*wk.ck.Config.Dim)
	}
	wk.chunks = r
	return r, nil
}

// stepChunked is Step with the window in chunks: each chunk goes forward
// through the owned layers and on to the next shard as soon as it is
// done, so shard s works on chunk c while shard s+1 works on chunk c−1;
// the backward then runs the chunks last first the same way. The chunk
// schedule is the same in one process and across shards, so Γ is too.
func (wk *Worker) stepChunked(ctx context.Context, k int, res shardrpc.StepResult) (shardrpc.StepResult, error) {
	r, err := wk.chunkState()
	if err != nil {
		return res, err
	}
	ch, train, d := r.ch, wk.spec.Trains(), wk.ck.Config.Dim
	nc := ch.Chunks()
	var win, targets []int32
	t0 := time.Now()
	if wk.part.Embed || wk.part.Head {
		win = wk.windows[k-1]
		targets = nn.Targets(win, 1, len(win))
	}
	for c := 0; c < nc; c++ {
		p0, p1 := ch.Span(c)
		var toks []int32
		var x []float32
		if wk.part.Embed {
			toks = win[p0:p1]
		} else if x, err = wk.pipe.RecvForward(ctx, fwdTag(k, c, nc)); err != nil {
			return res, err
		}
		h, err := ch.Forward(c, toks, x, train)
		if err != nil {
			return res, err
		}
		if !wk.part.Head {
			if err := wk.pipe.SendForward(ctx, fwdTag(k, c, nc), h); err != nil {
				return res, err
			}
			continue
		}
		loss, dh, err := ch.HeadLoss(h, targets[p0:p1], len(win)-1, train)
		if err != nil {
			return res, err
		}
		res.Loss += loss
		if train {
			copy(r.dh[p0*d:p1*d], dh)
		}
	}
	if wk.part.Head {
		res.Count = len(win) - 1
	}
	// As in Step, the phases include waiting for the neighbours: with
	// chunks they overlap with the neighbours' compute.
	wk.clock.add(&wk.clock.p.Forward, t0)
	if !train {
		res.PeakRSS, _ = sysmem.PeakRSS()
		return res, nil
	}
	t0 = time.Now()
	defer wk.clock.add(&wk.clock.p.Backward, t0)
	wk.st.ZeroGrad()
	for c := nc - 1; c >= 0; c-- {
		p0, p1 := ch.Span(c)
		var g []float32
		if wk.part.Head {
			g = r.dh[p0*d : p1*d]
		} else if g, err = wk.pipe.RecvBackward(ctx, bwdTag(k, c, nc)); err != nil {
			return res, err
		}
		dx, err := ch.Backward(c, g)
		if err != nil {
			return res, err
		}
		if !wk.part.Embed {
			if err := wk.pipe.SendBackward(ctx, bwdTag(k, c, nc), dx); err != nil {
				return res, err
			}
		}
	}
	res.GradSumSq = wk.gradSumSq()
	res.PeakRSS, _ = sysmem.PeakRSS()
	return res, nil
}
