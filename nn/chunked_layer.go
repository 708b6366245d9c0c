package nn

import "github.com/unipruning/unipruning/model"

// The chunked decoder layer is layerForward/layerBackward of stage.go on
// the rows [p0, p1) of one window: RoPE at the chunk's positions, keys and
// values written to (and attention read from) the layer's window cache,
// and the gradients of keys and values accumulated across chunks. The
// rest of the layer is row-wise and uses the same kernels.

// layerForward runs decoder layer l on the chunk x (rows p0..p1 of the
// window) into out; the intermediates stay in cs.work.
func (cs *Chunked[T]) layerForward(l int, out, x []T, p0, p1 int, obs Observer[T]) {
	s := cs.S
	c, blk, w := s.W.Cfg, s.W.Blocks[l], cs.work
	li, n, d := l-s.W.From, p1-p0, c.Dim
	qd, kd := c.QDim(), c.KVDim()
	rmsNorm(w.h1, x, blk.AttnNorm, w.inv1, n, d, c.NormEps)
	if obs != nil {
		for _, m := range []model.Matrix{model.Q, model.K, model.V} {
			obs.Observe(l, m, w.h1[:n*d], n, d)
		}
	}
	if c.QKNorm {
		linear(w.qr, w.h1, &blk.Lin[model.Q], n)
		linear(w.kr, w.h1, &blk.Lin[model.K], n)
		rmsNorm(w.q, w.qr, blk.QNorm, w.invq, n*c.Heads, c.HeadDim, c.NormEps)
		rmsNorm(w.k, w.kr, blk.KNorm, w.invk, n*c.KVHeads, c.HeadDim, c.NormEps)
	} else {
		linear(w.q, w.h1, &blk.Lin[model.Q], n)
		linear(w.k, w.h1, &blk.Lin[model.K], n)
	}
	linear(w.v, w.h1, &blk.Lin[model.V], n)
	ropeAt(s.rope, w.q, n, qd, p0, 1)
	ropeAt(s.rope, w.k, n, kd, p0, 1)
	copy(cs.kc[li][p0*kd:p1*kd], w.k[:n*kd])
	copy(cs.vc[li][p0*kd:p1*kd], w.v[:n*kd])
	chunkAttention(w.att, w.q, cs.kc[li], cs.vc[li], cs.shape(), p0, p1, cs.scratch)
	if obs != nil {
		obs.Observe(l, model.O, w.att[:n*qd], n, qd)
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

// layerBackward recomputes layer l on the chunk from its input x, turns
// dOut into dx (overwritten), accumulates the layer's parameter gradients
// into S.G and the chunk's contributions to the keys and values of chunks
// ≤ this one into the layer's dK/dV accumulators. When it returns, the
// accumulators' rows [p0, p1) were complete (all later chunks had added
// theirs) and have been pushed through the K and V projections.
func (cs *Chunked[T]) layerBackward(l int, dx, dOut, x []T, p0, p1 int) {
	s := cs.S
	c, blk, w := s.W.Cfg, s.W.Blocks[l], cs.work
	li, n, d := l-s.W.From, p1-p0, c.Dim
	qd, kd := c.QDim(), c.KVDim()
	cs.layerForward(l, cs.tmpOut, x, p0, p1, nil)
	gb := s.G.Blocks[l]
	copy(w.dxmid[:n*d], dOut[:n*d])
	clear(w.dm[:n*c.Hidden])
	linearBackward(w.dm, dOut, w.m, &blk.Lin[model.Down], &gb.Lin[model.Down], n)
	swigluBackward(w.dg[:n*c.Hidden], w.du[:n*c.Hidden], w.dm[:n*c.Hidden], w.g, w.u)
	clear(w.dh[:n*d])
	linearBackward(w.dh, w.dg, w.h2, &blk.Lin[model.Gate], &gb.Lin[model.Gate], n)
	linearBackward(w.dh, w.du, w.h2, &blk.Lin[model.Up], &gb.Lin[model.Up], n)
	rmsNormBackward(w.dxmid, w.dh, w.xmid, blk.MLPNorm, gb.MLPNorm, w.inv2, n, d)
	copy(dx[:n*d], w.dxmid[:n*d])
	clear(w.datt[:n*qd])
	linearBackward(w.datt, w.dxmid, w.att, &blk.Lin[model.O], &gb.Lin[model.O], n)
	clear(w.dq[:n*qd])
	chunkAttentionBackward(w.dq, cs.dk[li], cs.dv[li], w.datt, w.q, cs.kc[li], cs.vc[li], cs.shape(), p0, p1, cs.scratch)
	copy(w.dk[:n*kd], cs.dk[li][p0*kd:p1*kd])
	copy(w.dv[:n*kd], cs.dv[li][p0*kd:p1*kd])
	ropeAt(s.rope, w.dq, n, qd, p0, -1)
	ropeAt(s.rope, w.dk, n, kd, p0, -1)
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

func (cs *Chunked[T]) shape() attnShape {
	c := cs.S.W.Cfg
	return attnShape{B: 1, T: cs.T, H: c.Heads, KV: c.KVHeads, hd: c.HeadDim, window: c.SlidingWindow}
}

// ropeAt is ropeApply for n rows at positions p0, p0+1, ….
func ropeAt[T Float](r *Rope, x []T, n, w, p0 int, sign float64) {
	hd := 2 * r.half
	for row := 0; row < n; row++ {
		p := p0 + row
		cs, sn := r.cos[p*r.half:(p+1)*r.half], r.sin[p*r.half:(p+1)*r.half]
		for h := 0; h+hd <= w; h += hd {
			head := x[row*w+h : row*w+h+hd]
			for i := 0; i < r.half; i++ {
				a, b := r.pair(i)
				x0, x1 := float64(head[a]), float64(head[b])
				c, s := cs[i], sign*sn[i]
				head[a] = T(x0*c - x1*s)
				head[b] = T(x1*c + x0*s)
			}
		}
	}
}
