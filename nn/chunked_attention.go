package nn

import (
	"math"
	"runtime"
)

// Chunked causal attention: the queries of window positions [p0, p1)
// against the keys and values of positions [0, p1), held in the layer's
// window cache (T × KVDim, one window). Rows are handled in blocks of
// attnBlock; block [r0, r1) needs keys [0, r1) only.

func newChunkScratch[T Float](t int, grad bool) []chunkScratch[T] {
	s := make([]chunkScratch[T], runtime.GOMAXPROCS(0))
	blk := min(attnBlock, t)
	for i := range s {
		s[i].p, s[i].inv = make([]T, blk*t), make([]float64, blk)
		if grad {
			s[i].dp = make([]T, blk*t)
		}
	}
	return s
}

// forEachKVGroup runs f for every kv head on a pool of workers; each head
// group writes disjoint columns, and the query heads of a group run in a
// fixed order, so results do not depend on scheduling.
func forEachKVGroup[T Float](a attnShape, scratch []chunkScratch[T], f func(g int, s *chunkScratch[T])) {
	parallelFor(a.KV, len(scratch), func(w, g int) { f(g, &scratch[w]) })
}

// chunkScores fills p ((r1−r0) × r1, row stride r1) with exp(score − row
// max) of query rows [r0, r1) of one head (q: that head's first row of the
// block, row stride QDim) against keys [0, r1) (k: the head's column of
// the cache), exact zeros outside the causal/sliding window, and inv with
// 1/Σ of each row.
func chunkScores[T Float](p, q, k []T, a attnShape, r0, r1 int, inv []float64) {
	scale := T(1 / math.Sqrt(float64(a.hd)))
	Gemm(false, true, r1-r0, r1, a.hd, scale, q, a.qdim(), k, a.kvdim(), 0, p, r1)
	expRows(p, a.window, r0, r1, inv)
}

// chunkAttention writes out ((p1−p0) × QDim) = softmax(Q·Kᵀ/√hd + mask)·V
// for the chunk's queries q.
func chunkAttention[T Float](out, q, k, v []T, a attnShape, p0, p1 int, scratch []chunkScratch[T]) {
	group, qd, kd := a.H/a.KV, a.qdim(), a.kvdim()
	forEachKVGroup(a, scratch, func(g int, s *chunkScratch[T]) {
		kg, vg := k[g*a.hd:], v[g*a.hd:]
		for h := g * group; h < (g+1)*group; h++ {
			for r0 := p0; r0 < p1; r0 += attnBlock {
				r1 := min(p1, r0+attnBlock)
				m := r1 - r0
				off := (r0-p0)*qd + h*a.hd
				inv := s.inv[:m]
				chunkScores(s.p, q[off:], kg, a, r0, r1, inv)
				o := out[off:]
				Gemm(false, false, m, a.hd, r1, 1, s.p, r1, vg, kd, 0, o, qd)
				for i := 0; i < m; i++ {
					row := o[i*qd : i*qd+a.hd]
					for d := range row {
						row[d] = T(float64(row[d]) * inv[i])
					}
				}
			}
		}
	})
}

// chunkAttentionBackward adds to dq (the chunk's rows) and to dk, dv (the
// window's accumulators, rows [0, p1)) the gradients from dout, the
// gradient of the chunk's attention output, recomputing the probabilities.
func chunkAttentionBackward[T Float](dq, dk, dv, dout, q, k, v []T, a attnShape, p0, p1 int, scratch []chunkScratch[T]) {
	group, qd, kd := a.H/a.KV, a.qdim(), a.kvdim()
	scale := T(1 / math.Sqrt(float64(a.hd)))
	forEachKVGroup(a, scratch, func(g int, s *chunkScratch[T]) {
		c := g * a.hd
		for h := g * group; h < (g+1)*group; h++ {
			for r0 := p0; r0 < p1; r0 += attnBlock {
				r1 := min(p1, r0+attnBlock)
				m := r1 - r0
				off := (r0-p0)*qd + h*a.hd
				inv := s.inv[:m]
				chunkScores(s.p, q[off:], k[c:], a, r0, r1, inv)
				for i := 0; i < m; i++ {
					row := s.p[i*r1 : (i+1)*r1]
					for j := range row {
						row[j] = T(float64(row[j]) * inv[i])
					}
				}
				do := dout[off:]
				// dV[0:r1] += Pᵀ·dOut ; dP = dOut·Vᵀ
				Gemm(true, false, r1, a.hd, m, 1, s.p, r1, do, qd, 1, dv[c:], kd)
				Gemm(false, true, m, r1, a.hd, 1, do, qd, v[c:], kd, 0, s.dp, r1)
				softmaxBackward(s.dp, s.p, m, r1, r0)
				// dQ += dS·K·scale ; dK[0:r1] += dSᵀ·Q·scale
				Gemm(false, false, m, a.hd, r1, scale, s.dp, r1, k[c:], kd, 1, dq[off:], qd)
				Gemm(true, false, r1, a.hd, m, scale, s.dp, r1, q[off:], qd, 1, dk[c:], kd)
			}
		}
	})
}
