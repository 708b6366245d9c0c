package nn

import (
	"runtime"

	"github.com/unipruning/unipruning/model"
)

// StageMemory is what a Stage allocates besides its weights and
// gradients, in bytes, for windows of a given number of tokens (B·T).
type StageMemory struct {
	// Activations: each owned layer's input, kept for the backward pass
	// (Dim values per token per layer; zero without backward).
	Activations int64
	// Workspace: one layer's intermediates (recomputed per layer), the
	// ping-pong buffers, the attention scratch of every worker and the LM
	// head's normalised states and logit chunks.
	Workspace int64
}

// Total is the sum of the items.
func (m StageMemory) Total() int64 { return m.Activations + m.Workspace }

// PlanStageMemory returns the memory a Stage over part p allocates for b
// windows of t tokens with (grad) or without a backward pass, mirroring
// the allocations of ensure, newLayerWork, newScratch and headBuffers;
// workers is GOMAXPROCS (0: this process's).
func PlanStageMemory[T Float](c *model.Config, p Part, b, t, workers int, grad bool) StageMemory {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var zero T
	e := int64(sizeOf(zero))
	n := int64(b * t)
	d := int64(c.Dim)
	var m StageMemory
	layers := int64(p.To - p.From)
	if layers > 0 {
		if grad {
			m.Activations = layers * n * d * e
		}
		vals, f64 := layerWorkSize(c, n, grad)
		vals += 5 * n * d // fwd, bwd ping-pong and tmpOut
		// attention scratch per worker
		blk, tt, hdim := int64(min(attnBlock, t)), int64(t), int64(c.HeadDim)
		sv := blk*tt + 2*hdim*tt + hdim*blk
		sf := blk
		if grad {
			sv += blk*tt + 2*hdim*tt + hdim*blk
		}
		vals += int64(workers) * sv
		f64 += int64(workers) * sf
		m.Workspace += vals*e + f64*8
	}
	if p.Head {
		m.Workspace += headBytes(c, n, workers, e)
	}
	return m
}

// layerWorkSize is what newLayerWork allocates for n rows: values of T
// and float64s.
func layerWorkSize(c *model.Config, n int64, grad bool) (vals, f64 int64) {
	d, qd, kd, hd := int64(c.Dim), int64(c.QDim()), int64(c.KVDim()), int64(c.Hidden)
	vals = n * (3*d + 2*qd + 2*kd + 3*hd)
	f64 = 2 * n
	if grad {
		vals += n * (2*d + 2*qd + 2*kd + 3*hd)
	}
	if c.QKNorm {
		vals += n * (qd + kd)
		f64 += n * int64(c.Heads+c.KVHeads)
		if grad {
			vals += n * (qd + kd)
		}
	}
	return vals, f64
}

// headBytes is what the LM head's buffers take for n rows (elements of e
// bytes): normalised states and their gradient, the per-row sums and the
// logit chunks of its workers.
func headBytes(c *model.Config, n int64, workers int, e int64) int64 {
	rows := min(int64(max(1, headChunkValues/c.Vocab)), n)
	w := int64(min(workers, headWorkersMax))
	if chunks := (n + rows - 1) / rows; chunks < w {
		w = chunks
	}
	return 3*n*int64(c.Dim)*e + 8*n + w*rows*int64(c.Vocab)*e
}

func sizeOf[T Float](T) int {
	var x T
	switch any(x).(type) {
	case float32:
		return 4
	default:
		return 8
	}
}
