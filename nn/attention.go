package nn

import (
	"math"
	"runtime"
)

// attnShape describes the multi-head attention of a batch: B windows of T
// tokens, H query heads sharing KV heads in groups, head width hd.
type attnShape struct {
	B, T, H, KV, hd int
	window          int // sliding window (0 = none)
}

func (a attnShape) qdim() int  { return a.H * a.hd }
func (a attnShape) kvdim() int { return a.KV * a.hd }

// attnBlock is the number of query rows handled at once. Row block
// [r0, r1) only attends to keys [0, r1), so causal attention costs about
// half of the full T×T products.
const attnBlock = 64

// attnScratch is per-worker memory.
type attnScratch[T Float] struct {
	p, dp  []T // attnBlock × T probabilities and their gradient
	kt, vt []T // hd × T transposed keys and values of the current head
	ot     []T // hd × attnBlock transposed output block (narrow heads)
	inv    []float64
	// Narrow-head backward: transposed gradients of K and V (hd × T),
	// and a transposed block of dOut or Q (hd × attnBlock).
	dkt, dvt, bt []T
}

// narrowHead is the head width below which P·V is computed transposed:
// gemm kernels are fast on long rows, and a row of V is only hd long.
const narrowHead = 32

// forEachGroup runs f for every (window, kv-head) pair on a pool of
// workers. Each pair writes disjoint outputs, and the query heads of a group
// are handled in a fixed order, so results do not depend on scheduling.
func forEachGroup[T Float](a attnShape, scratch []attnScratch[T], f func(b, g int, s *attnScratch[T])) {
	parallelFor(a.B*a.KV, len(scratch), func(w, j int) { f(j/a.KV, j%a.KV, &scratch[w]) })
}

func newScratch[T Float](t, hd int, grad bool) []attnScratch[T] {
	n := runtime.GOMAXPROCS(0)
	s := make([]attnScratch[T], n)
	blk := min(attnBlock, t)
	for i := range s {
		s[i].p, s[i].kt, s[i].vt = make([]T, blk*t), make([]T, hd*t), make([]T, hd*t)
		s[i].ot, s[i].inv = make([]T, hd*blk), make([]float64, blk)
		if grad {
			s[i].dp = make([]T, blk*t)
			s[i].dkt, s[i].dvt, s[i].bt = make([]T, hd*t), make([]T, hd*t), make([]T, hd*blk)
		}
	}
	return s
}

// transposeHead writes the t×hd head at x (row stride ld) as hd×t into dst.
func transposeHead[T Float](dst, x []T, t, hd, ld int) {
	for i := 0; i < t; i++ {
		row := x[i*ld : i*ld+hd]
		for d, v := range row {
			dst[d*t+i] = v
		}
	}
}

// attention computes out = softmax(Q·Kᵀ/√hd + causal mask)·V per head.
func attention[T Float](out, q, k, v []T, a attnShape, scratch []attnScratch[T]) {
	group := a.H / a.KV
	forEachGroup(a, scratch, func(b, g int, s *attnScratch[T]) {
		ko := b*a.T*a.kvdim() + g*a.hd
		transposeHead(s.kt, k[ko:], a.T, a.hd, a.kvdim())
		narrow := a.hd < narrowHead
		if narrow {
			transposeHead(s.vt, v[ko:], a.T, a.hd, a.kvdim())
		}
		for h := g * group; h < (g+1)*group; h++ {
			qo := b*a.T*a.qdim() + h*a.hd
			for r0 := 0; r0 < a.T; r0 += attnBlock {
				r1 := min(a.T, r0+attnBlock)
				// Unnormalised probabilities: each output row is scaled by
				// 1/Σ afterwards, one pass over hd values instead of r1.
				inv := s.inv[:r1-r0]
				expScores(s.p, q[qo:], s.kt, a, r0, r1, inv)
				o := out[qo+r0*a.qdim():]
				m := r1 - r0
				if !narrow {
					Gemm(false, false, m, a.hd, r1, 1, s.p, r1, v[ko:], a.kvdim(), 0, o, a.qdim())
					for i := 0; i < m; i++ {
						row := o[i*a.qdim() : i*a.qdim()+a.hd]
						for d := range row {
							row[d] = T(float64(row[d]) * inv[i])
						}
					}
					continue
				}
				// Oᵀ = Vᵀ·Pᵀ: dot products over the r1 keys.
				Gemm(false, true, a.hd, m, r1, 1, s.vt, a.T, s.p, r1, 0, s.ot, m)
				for i := 0; i < m; i++ {
					for d := 0; d < a.hd; d++ {
						o[i*a.qdim()+d] = T(float64(s.ot[d*m+i]) * inv[i])
					}
				}
			}
		}
	})
}

// probs fills p ((r1−r0) × r1, row stride r1) with the causal softmax of
// query rows [r0, r1) of one head against keys [0, r1) (kt is the head's
// transposed keys). Masked entries are exactly zero; sums are float64.
func probs[T Float](p, q, kt []T, a attnShape, r0, r1 int) {
	var invBuf [attnBlock]float64
	inv := invBuf[:r1-r0]
	expScores(p, q, kt, a, r0, r1, inv)
	for i := r0; i < r1; i++ {
		row := p[(i-r0)*r1 : (i-r0+1)*r1]
		for j := range row[:i+1] {
			row[j] = T(float64(row[j]) * inv[i-r0])
		}
	}
}

// expScores fills p with exp(score − row max) on the causal (and sliding)
// window, exact zeros elsewhere, and inv[i] with 1/Σ of row i.
func expScores[T Float](p, q, kt []T, a attnShape, r0, r1 int, inv []float64) {
	scale := T(1 / math.Sqrt(float64(a.hd)))
	Gemm(false, false, r1-r0, r1, a.hd, scale, q[r0*a.qdim():], a.qdim(), kt, a.T, 0, p, r1)
	expRows(p, a.window, r0, r1, inv)
}

// expRows turns the raw scores p of query rows [r0, r1) against keys
// [0, r1) (row stride r1) into exp(score − row max) on the causal (and
// sliding, window > 0) window, exact zeros elsewhere, and inv[i] into
// 1/Σ of row i.
func expRows[T Float](p []T, window, r0, r1 int, inv []float64) {
	fast := isF32[T]()
	for i := r0; i < r1; i++ {
		row := p[(i-r0)*r1 : (i-r0+1)*r1]
		lo := 0
		if window > 0 && i-window+1 > 0 {
			lo = i - window + 1
		}
		mx := row[lo]
		for _, x := range row[lo : i+1] {
			if x > mx {
				mx = x
			}
		}
		var sum float64
		for j := lo; j <= i; j++ {
			var e float64
			// The fast exponential for float32; float64 keeps every digit
			// for the gradient checks.
			if fast {
				e = expNeg(float64(row[j] - mx))
			} else {
				e = math.Exp(float64(row[j] - mx))
			}
			row[j] = T(e)
			sum += e
		}
		inv[i-r0] = 1 / sum
		clear(row[:lo])
		clear(row[i+1:])
	}
}

// attentionBackward accumulates dq, dk, dv (all must be zeroed or hold
// earlier contributions) from dout, recomputing the probabilities.
func attentionBackward[T Float](dq, dk, dv, dout, q, k, v []T, a attnShape, scratch []attnScratch[T]) {
	group := a.H / a.KV
	kd := a.kvdim()
	forEachGroup(a, scratch, func(b, g int, s *attnScratch[T]) {
		ko := b*a.T*kd + g*a.hd
		transposeHead(s.kt, k[ko:], a.T, a.hd, kd)
		transposeHead(s.vt, v[ko:], a.T, a.hd, kd)
		narrow := a.hd < narrowHead
		if narrow {
			clear(s.dkt[:a.hd*a.T])
			clear(s.dvt[:a.hd*a.T])
		}
		for h := g * group; h < (g+1)*group; h++ {
			qo := b*a.T*a.qdim() + h*a.hd
			for r0 := 0; r0 < a.T; r0 += attnBlock {
				r1 := min(a.T, r0+attnBlock)
				if narrow {
					headBackwardNarrow(dq[qo:], dout[qo:], q[qo:], s, a, r0, r1)
				} else {
					headBackwardWide(dq[qo:], dk[ko:], dv[ko:], dout[qo:], q[qo:], k[ko:], s, a, r0, r1)
				}
			}
		}
		if narrow { // scatter the transposed K/V gradients of the group
			for i := 0; i < a.T; i++ {
				for d := 0; d < a.hd; d++ {
					dk[ko+i*kd+d] += s.dkt[d*a.T+i]
					dv[ko+i*kd+d] += s.dvt[d*a.T+i]
				}
			}
		}
	})
}

// headBackwardWide handles query rows [r0, r1) of one head with row-major
// products (wide heads: rows of hd values are long enough for gemm).
func headBackwardWide[T Float](dq, dk, dv, dout, q, k []T, s *attnScratch[T], a attnShape, r0, r1 int) {
	qd, kd, m := a.qdim(), a.kvdim(), r1-r0
	scale := T(1 / math.Sqrt(float64(a.hd)))
	probs(s.p, q, s.kt, a, r0, r1)
	do := dout[r0*qd:]
	// dV[0:r1] += Pᵀ·dOut ; dP = dOut·Vᵀ
	Gemm(true, false, r1, a.hd, m, 1, s.p, r1, do, qd, 1, dv, kd)
	Gemm(false, false, m, r1, a.hd, 1, do, qd, s.vt, a.T, 0, s.dp, r1)
	softmaxBackward(s.dp, s.p, m, r1, r0)
	// dQ += dS·K·scale ; dK[0:r1] += dSᵀ·Q·scale
	Gemm(false, false, m, a.hd, r1, scale, s.dp, r1, k, kd, 1, dq[r0*qd:], qd)
	Gemm(true, false, r1, a.hd, m, scale, s.dp, r1, q[r0*qd:], qd, 1, dk, kd)
}

// headBackwardNarrow is the same for narrow heads, with every product
// arranged so that the long dimension is the key axis: dKᵀ and dVᵀ
// accumulate in the scratch (hd × T) and dQ's block is computed transposed.
func headBackwardNarrow[T Float](dq, dout, q []T, s *attnScratch[T], a attnShape, r0, r1 int) {
	qd, m := a.qdim(), r1-r0
	scale := T(1 / math.Sqrt(float64(a.hd)))
	probs(s.p, q, s.kt, a, r0, r1)
	do := dout[r0*qd:]
	transposeHead(s.bt, do, m, a.hd, qd) // dOutᵀ (hd × m)
	// dVᵀ[:, 0:r1] += dOutᵀ·P ; dP = dOut·Vᵀ
	Gemm(false, false, a.hd, r1, m, 1, s.bt, m, s.p, r1, 1, s.dvt, a.T)
	Gemm(false, false, m, r1, a.hd, 1, do, qd, s.vt, a.T, 0, s.dp, r1)
	softmaxBackward(s.dp, s.p, m, r1, r0)
	transposeHead(s.bt, q[r0*qd:], m, a.hd, qd) // Qᵀ (hd × m)
	// dKᵀ[:, 0:r1] += Qᵀ·dS·scale ; dQᵀ = Kᵀ·dSᵀ·scale
	Gemm(false, false, a.hd, r1, m, scale, s.bt, m, s.dp, r1, 1, s.dkt, a.T)
	Gemm(false, true, a.hd, m, r1, scale, s.kt, a.T, s.dp, r1, 0, s.ot, m)
	dqb := dq[r0*qd:]
	for i := 0; i < m; i++ {
		for d := 0; d < a.hd; d++ {
			dqb[i*qd+d] += s.ot[d*m+i]
		}
	}
}

// softmaxBackward turns dp into dS = P ⊙ (dP − rowsum(dP ⊙ P)) in place for
// rows r0.. of a block of m rows with stride w.
func softmaxBackward[T Float](dp, p []T, m, w, r0 int) {
	for i := 0; i < m; i++ {
		pr, dr := p[i*w:(i+1)*w], dp[i*w:(i+1)*w]
		var dot float64
		for j := 0; j <= r0+i; j++ {
			dot += float64(pr[j]) * float64(dr[j])
		}
		for j := range dr {
			dr[j] = T(float64(pr[j]) * (float64(dr[j]) - dot))
		}
	}
}
