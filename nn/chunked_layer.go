package nn

// The chunked decoder layer is layerForward/layerBackward of stage.go on
// the rows [p0, p1) of one window: RoPE at the chunk's positions, keys and
// values written to (and attention read from) the layer's window cache,
// and the gradients of keys and values accumulated across chunks. The
// rest of the layer is row-wise: qkvForward/outForward and their
// gradients (layer.go), the same code as the whole-window Stage.

// layerForward runs decoder layer l on the chunk x (rows p0..p1 of the
// window) into out; the intermediates stay in cs.work.
func (cs *Chunked[T]) layerForward(l int, out, x []T, p0, p1 int, obs Observer[T]) {
	s := cs.S
	c, blk, w := s.W.Cfg, s.W.Blocks[l], cs.work
	li, n := l-s.W.From, p1-p0
	kd := c.KVDim()
	w.qkvForward(c, l, blk, x, n, obs)
	ropeAt(s.rope, w.q, n, c.QDim(), p0, 1)
	ropeAt(s.rope, w.k, n, kd, p0, 1)
	copy(cs.kc[li][p0*kd:p1*kd], w.k[:n*kd])
	copy(cs.vc[li][p0*kd:p1*kd], w.v[:n*kd])
	chunkAttention(w.att, w.q, cs.kc[li], cs.vc[li], cs.shape(), p0, p1, cs.scratch)
	w.outForward(c, l, blk, out, x, n, obs)
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
	li, n := l-s.W.From, p1-p0
	qd, kd := c.QDim(), c.KVDim()
	cs.layerForward(l, cs.tmpOut, x, p0, p1, nil)
	gb := s.G.Blocks[l]
	w.outBackward(c, blk, gb, dx, dOut, n)
	clear(w.dq[:n*qd])
	chunkAttentionBackward(w.dq, cs.dk[li], cs.dv[li], w.datt, w.q, cs.kc[li], cs.vc[li], cs.shape(), p0, p1, cs.scratch)
	copy(w.dk[:n*kd], cs.dk[li][p0*kd:p1*kd])
	copy(w.dv[:n*kd], cs.dv[li][p0*kd:p1*kd])
	ropeAt(s.rope, w.dq, n, qd, p0, -1)
	ropeAt(s.rope, w.dk, n, kd, p0, -1)
	w.qkvBackward(c, blk, gb, dx, x, n)
}

func (cs *Chunked[T]) shape() attnShape {
	c := cs.S.W.Cfg
	return attnShape{B: 1, T: cs.T, H: c.Heads, KV: c.KVHeads, hd: c.HeadDim, window: c.SlidingWindow}
}
