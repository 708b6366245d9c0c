package nn

import (
	"runtime"

	"github.com/unipruning/unipruning/model"
)

// StageWorkspaceBytes estimates what a forward-only Stage allocates for
// batches of b windows of t tokens: one layer's intermediates, the stage's
// five row buffers, attention scratch per worker and, with head, the
// head's normed rows and its per-worker logit chunks. Memory checks add it
// to the weights they hold before anything is allocated.
func StageWorkspaceBytes(c *model.Config, b, t int, head bool) uint64 {
	n, d := uint64(b*t), uint64(c.Dim)
	qd, kd, h := uint64(c.QDim()), uint64(c.KVDim()), uint64(c.Hidden)
	layer := n * (3*d + 2*qd + 2*kd + 3*h)
	if c.QKNorm {
		layer += n * (qd + kd)
	}
	stage := 5 * n * d
	workers := uint64(runtime.GOMAXPROCS(0))
	blk, tt, hd := uint64(min(attnBlock, t)), uint64(t), uint64(c.HeadDim)
	attn := workers * (blk*tt + 2*hd*tt + hd*blk)
	total := layer + stage + attn
	if head {
		rows := max(1, headChunkValues/uint64(c.Vocab))
		logits := min(workers, headWorkersMax) * min(n, rows) * uint64(c.Vocab)
		total += 3*n*d + logits
	}
	return 4*total + 8*2*n // + the float64 1/rms per row
}
