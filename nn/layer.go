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
	n, d := s.B*s.T, c.Dim
	rmsNorm(w.h1, x, blk.AttnNorm, w.inv1, n, d, c.NormEps)
	for _, m := range []model.Matrix{model.Q, model.K, model.V} {
		if obs != nil {
			obs.Observe(l, m, w.h1, n, d)
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
	ropeApply(s.rope, w.q, n, c.QDim(), s.T, 1)
	ropeApply(s.rope, w.k, n, c.KVDim(), s.T, 1)
	attention(w.att, w.q, w.k, w.v, s.attn(), s.scratch)
	if obs != nil {
		obs.Observe(l, model.O, w.att, n, c.QDim())
	}
	linear(w.xmid, w.att, &blk.Lin[model.O], n)
	for i := range w.xmid[:n*d] {
		w.xmid[i] += x[i]
	}
	rmsNorm(w.h2, w.xmid, blk.MLPNorm, w.inv2, n, d, c.NormEps)
	if obs != nil {
		obs.Observe(l, model.Gate, w.h2, n, d)
		obs.Observe(l, model.Up, w.h2, n, d)
	}
	linear(w.g, w.h2, &blk.Lin[model.Gate], n)
	linear(w.u, w.h2, &blk.Lin[model.Up], n)
	swiglu(w.m[:n*c.Hidden], w.g, w.u)
	if obs != nil {
		obs.Observe(l, model.Down, w.m, n, c.Hidden)
	}
	linear(out, w.m, &blk.Lin[model.Down], n)
	for i := range out[:n*d] {
		out[i] += w.xmid[i]
	}
}

// layerBackward recomputes layer l from its input x, then turns dOut (the
// gradient of the layer's output) into dx (overwritten) and accumulates
// the parameter gradients of the layer into s.G.
func (s *Stage[T]) layerBackward(l int, dx, dOut, x []T) {
	c, blk, w := s.W.Cfg, s.W.Blocks[l], s.work
	n, d := s.B*s.T, c.Dim
	s.layerForward(l, s.tmpOut, x, nil)
	gb := s.G.Blocks[l]
	// MLP: out = xmid + Down(silu(Gate h2)·Up h2)
	copy(w.dxmid[:n*d], dOut[:n*d])
	clear(w.dm[:n*c.Hidden])
	linearBackward(w.dm, dOut, w.m, &blk.Lin[model.Down], &gb.Lin[model.Down], n)
	swigluBackward(w.dg[:n*c.Hidden], w.du[:n*c.Hidden], w.dm[:n*c.Hidden], w.g, w.u)
	clear(w.dh[:n*d])
	linearBackward(w.dh, w.dg, w.h2, &blk.Lin[model.Gate], &gb.Lin[model.Gate], n)
	linearBackward(w.dh, w.du, w.h2, &blk.Lin[model.Up], &gb.Lin[model.Up], n)
	rmsNormBackward(w.dxmid, w.dh, w.xmid, blk.MLPNorm, gb.MLPNorm, w.inv2, n, d)
	// attention: xmid = x + O(att)
	copy(dx[:n*d], w.dxmid[:n*d])
	clear(w.datt[:n*c.QDim()])
	linearBackward(w.datt, w.dxmid, w.att, &blk.Lin[model.O], &gb.Lin[model.O], n)
	clear(w.dq[:n*c.QDim()])
	clear(w.dk[:n*c.KVDim()])
	clear(w.dv[:n*c.KVDim()])
	attentionBackward(w.dq, w.dk, w.dv, w.datt, w.q, w.k, w.v, s.attn(), s.scratch)
	ropeApply(s.rope, w.dq, n, c.QDim(), s.T, -1)
	ropeApply(s.rope, w.dk, n, c.KVDim(), s.T, -1)
	dq, dk := w.dq, w.dk
	if c.QKNorm {
		dq, dk = w.dqr[:n*c.QDim()], w.dkr[:n*c.KVDim()]
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
