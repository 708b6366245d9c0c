package nn

import "github.com/unipruning/unipruning/model"

// Observer sees the input of every target linear layer during a forward
// pass (rows × cols, row-major); pruning metrics collect activation
// statistics through it. x is only valid during the call.
type Observer[T Float] interface {
	Observe(layer int, m model.Matrix, x []T, rows, cols int)
}

// layerWork holds one decoder layer's intermediate values for n rows; it is
// reused for every layer (activations of earlier layers are recomputed in
// the backward pass, see Stage).
type layerWork[T Float] struct {
	n                               int
	h1, q, k, v, att, xmid, h2      []T
	g, u, m                         []T
	inv1, inv2                      []float64
	dh, dq, dk, dv, datt, dxmid, dm []T
	dg, du                          []T
	// Per-head q/k norms (Config.QKNorm): the raw projections, 1/rms per
	// (row, head), and the gradients of the raw projections.
	qr, kr, dqr, dkr []T
	invq, invk       []float64
}

func newLayerWork[T Float](c *model.Config, n int, grad bool) *layerWork[T] {
	d, qd, kd, hd := c.Dim, c.QDim(), c.KVDim(), c.Hidden
	w := &layerWork[T]{n: n,
		h1: make([]T, n*d), q: make([]T, n*qd), k: make([]T, n*kd), v: make([]T, n*kd),
		att: make([]T, n*qd), xmid: make([]T, n*d), h2: make([]T, n*d),
		g: make([]T, n*hd), u: make([]T, n*hd), m: make([]T, n*hd),
		inv1: make([]float64, n), inv2: make([]float64, n),
	}
	if grad {
		w.dh, w.dq, w.dk, w.dv = make([]T, n*d), make([]T, n*qd), make([]T, n*kd), make([]T, n*kd)
		w.datt, w.dxmid, w.dm = make([]T, n*qd), make([]T, n*d), make([]T, n*hd)
		w.dg, w.du = make([]T, n*hd), make([]T, n*hd)
	}
	if c.QKNorm {
		w.qr, w.kr = make([]T, n*qd), make([]T, n*kd)
		w.invq, w.invk = make([]float64, n*c.Heads), make([]float64, n*c.KVHeads)
		if grad {
			w.dqr, w.dkr = make([]T, n*qd), make([]T, n*kd)
		}
	}
	return w
}

// layerForward runs decoder layer l on x (n = B·T rows) and writes the
// result to out. The intermediates stay in w for a following backward.
func (s *Stage[T]) layerForward(l int, out, x []T, obs Observer[T]) {
	c, blk, w := s.W.Cfg, s.W.Blocks[l], s.work
	n := s.B * s.T
	w.qkvForward(c, l, blk, x, n, obs)
	ropeApply(s.rope, w.q, n, c.QDim(), s.T, 1)
	ropeApply(s.rope, w.k, n, c.KVDim(), s.T, 1)
	attention(w.att, w.q, w.k, w.v, s.attn(), s.scratch)
	w.outForward(c, l, blk, out, x, n, obs)
}

// layerBackward recomputes layer l from its input x, then turns dOut (the
// gradient of the layer's output) into dx (overwritten) and accumulates
// the parameter gradients of the layer into s.G.
func (s *Stage[T]) layerBackward(l int, dx, dOut, x []T) {
	c, blk, w := s.W.Cfg, s.W.Blocks[l], s.work
	n := s.B * s.T
	s.layerForward(l, s.tmpOut, x, nil)
	gb := s.G.Blocks[l]
	w.outBackward(c, blk, gb, dx, dOut, n)
	clear(w.dq[:n*c.QDim()])
	clear(w.dk[:n*c.KVDim()])
	clear(w.dv[:n*c.KVDim()])
	attentionBackward(w.dq, w.dk, w.dv, w.datt, w.q, w.k, w.v, s.attn(), s.scratch)
	ropeApply(s.rope, w.dq, n, c.QDim(), s.T, -1)
	ropeApply(s.rope, w.dk, n, c.KVDim(), s.T, -1)
	w.qkvBackward(c, blk, gb, dx, x, n)
}

// The decoder layer around its attention, shared by the whole-window
// Stage and the Chunked schedule (which differ only in how attention and
// RoPE see positions): qkvForward/outForward before and after attention,
// outBackward/qkvBackward their gradients.

// qkvForward sets h1 = RMSNorm(x) and the q, k, v projections of n rows
// (with Qwen3's per-head q/k norms), before RoPE.
func (w *layerWork[T]) qkvForward(c *model.Config, l int, blk *Block[T], x []T, n int, obs Observer[T]) {
	d := c.Dim
	rmsNorm(w.h1, x, blk.AttnNorm, w.inv1, n, d, c.NormEps)
	if obs != nil {
		for _, m := range []model.Matrix{model.Q, model.K, model.V} {
			obs.Observe(l, m, w.h1[:n*d], n, d)
		}
	}
	if c.QKNorm { // Qwen3: RMSNorm over each head of q and k, before RoPE
		linear(w.qr, w.h1, &blk.Lin[model.Q], n)
		linear(w.kr, w.h1, &blk.Lin[model.K], n)
		rmsNorm(w.q, w.qr, blk.QNorm, w.invq, n*c.Heads, c.HeadDim, c.NormEps)
		rmsNorm(w.k, w.kr, blk.KNorm, w.invk, n*c.KVHeads, c.HeadDim, c.NormEps)
	} else {
		linear(w.q, w.h1, &blk.Lin[model.Q], n)
		linear(w.k, w.h1, &blk.Lin[model.K], n)
	}
	linear(w.v, w.h1, &blk.Lin[model.V], n)
}

// outForward turns the attention output w.att into the layer's output:
// xmid = x + O(att), out = xmid + Down(silu(Gate h2)·Up h2), h2 = RMSNorm(xmid).
func (w *layerWork[T]) outForward(c *model.Config, l int, blk *Block[T], out, x []T, n int, obs Observer[T]) {
	d := c.Dim
	if obs != nil {
		obs.Observe(l, model.O, w.att[:n*c.QDim()], n, c.QDim())
	}
	linear(w.xmid, w.att, &blk.Lin[model.O], n)
	for i := range w.xmid[:n*d] {
		w.xmid[i] += x[i]
	}
	rmsNorm(w.h2, w.xmid, blk.MLPNorm, w.inv2, n, d, c.NormEps)
	if obs != nil {
		obs.Observe(l, model.Gate, w.h2[:n*d], n, d)
		obs.Observe(l, model.Up, w.h2[:n*d], n, d)
	}
	linear(w.g, w.h2, &blk.Lin[model.Gate], n)
	linear(w.u, w.h2, &blk.Lin[model.Up], n)
	swiglu(w.m[:n*c.Hidden], w.g, w.u)
	if obs != nil {
		obs.Observe(l, model.Down, w.m[:n*c.Hidden], n, c.Hidden)
	}
	linear(out, w.m, &blk.Lin[model.Down], n)
	for i := range out[:n*d] {
		out[i] += w.xmid[i]
	}
}

// outBackward is outForward's gradient: from dOut it sets dx to the
// residual path's gradient (dxmid) and w.datt to the attention output's,
// accumulating the MLP, its norm's and O's parameter gradients into gb.
func (w *layerWork[T]) outBackward(c *model.Config, blk, gb *Block[T], dx, dOut []T, n int) {
	d := c.Dim
	copy(w.dxmid[:n*d], dOut[:n*d])
	clear(w.dm[:n*c.Hidden])
	linearBackward(w.dm, dOut, w.m, &blk.Lin[model.Down], &gb.Lin[model.Down], n)
	swigluBackward(w.dg[:n*c.Hidden], w.du[:n*c.Hidden], w.dm[:n*c.Hidden], w.g, w.u)
	clear(w.dh[:n*d])
	linearBackward(w.dh, w.dg, w.h2, &blk.Lin[model.Gate], &gb.Lin[model.Gate], n)
	linearBackward(w.dh, w.du, w.h2, &blk.Lin[model.Up], &gb.Lin[model.Up], n)
	rmsNormBackward(w.dxmid, w.dh, w.xmid, blk.MLPNorm, gb.MLPNorm, w.inv2, n, d)
	copy(dx[:n*d], w.dxmid[:n*d])
	clear(w.datt[:n*c.QDim()])
	linearBackward(w.datt, w.dxmid, w.att, &blk.Lin[model.O], &gb.Lin[model.O], n)
}

// qkvBackward is qkvForward's gradient: from w.dq, w.dk (RoPE already
// undone) and w.dv it adds the input's gradient to dx and accumulates the
// projections' and norms' parameter gradients into gb.
func (w *layerWork[T]) qkvBackward(c *model.Config, blk, gb *Block[T], dx, x []T, n int) {
	d, qd, kd := c.Dim, c.QDim(), c.KVDim()
	dq, dk := w.dq, w.dk
	if c.QKNorm {
		dq, dk = w.dqr[:n*qd], w.dkr[:n*kd]
		clear(dq)
		clear(dk)
		rmsNormBackward(dq, w.dq, w.qr, blk.QNorm, gb.QNorm, w.invq, n*c.Heads, c.HeadDim)
		rmsNormBackward(dk, w.dk, w.kr, blk.KNorm, gb.KNorm, w.invk, n*c.KVHeads, c.HeadDim)
	}
	clear(w.dh[:n*d])
	linearBackward(w.dh, dq, w.h1, &blk.Lin[model.Q], &gb.Lin[model.Q], n)
	linearBackward(w.dh, dk, w.h1, &blk.Lin[model.K], &gb.Lin[model.K], n)
	linearBackward(w.dh, w.dv, w.h1, &blk.Lin[model.V], &gb.Lin[model.V], n)
	rmsNormBackward(dx, w.dh, x, blk.AttnNorm, gb.AttnNorm, w.inv1, n, d)
}

func (s *Stage[T]) attn() attnShape {
	c := s.W.Cfg
	return attnShape{B: s.B, T: s.T, H: c.Heads, KV: c.KVHeads, hd: c.HeadDim, window: c.SlidingWindow}
}
