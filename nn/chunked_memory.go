package nn

import (
	"runtime"

	"github.com/unipruning/unipruning/model"
)

// PlanChunkedMemory is PlanStageMemory for a Chunked run of part p over
// one window of t tokens in chunks of chunk tokens, mirroring NewChunked,
// its lazily kept inputs and the head's buffers. Activations are what
// lives for the whole window: per owned layer K and V (2·KVDim per
// token), and with grad its input (Dim) and the gradients of K and V
// (2·KVDim). Workspace is sized by the chunk, except the attention
// scratch (attnBlock × t per worker).
func PlanChunkedMemory[T Float](c *model.Config, p Part, t, chunk, workers int, grad bool) StageMemory {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	chunk = min(chunk, t)
	var zero T
	e := int64(sizeOf(zero))
	n, tt := int64(chunk), int64(t)
	d, kd := int64(c.Dim), int64(c.KVDim())
	layers := int64(p.To - p.From)
	var m StageMemory
	m.Activations = layers * 2 * tt * kd * e
	if grad {
		m.Activations += layers * (tt*d + 2*tt*kd) * e
	}
	// layerWork for chunk rows (allocated even by a stage of no layers)
	vals, f64 := layerWorkSize(c, n, grad)
	vals += 5 * n * d // fwd, bwd ping-pong and tmpOut
	blk := int64(min(attnBlock, t))
	sv := blk * tt
	if grad {
		sv *= 2
	}
	vals += int64(workers) * sv
	f64 += int64(workers) * blk
	m.Workspace = vals*e + f64*8 + 4*tt // + the window's token ids
	if p.Head {
		m.Workspace += headBytes(c, n, workers, e)
	}
	return m
}
