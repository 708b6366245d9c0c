package prune

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// SparseGPT (Frantar & Alistarh, 2023) prunes one linear layer column by
// column and, after each pruned weight, updates the not yet processed
// weights of its row with the Optimal Brain Surgeon correction, so the
// weights of the result differ from the input (DESIGN §2.5).
//
// The arithmetic follows the published fasterprune in float64: dead inputs
// (diag H = 0) get H_dd = 1 and zero weights, H is dampened by
// PercDamp·mean(diag H), Hinv is the upper Cholesky factor of H⁻¹, columns
// are processed in blocks with the in-block updates applied immediately and
// the out-of-block ones deferred to one gemm per block. Departures, all of
// them about which weights are pruned, never about how the rest is updated:
//
//   - Exact counts. The reference prunes, per block, every score ≤ the
//     int(numel·p)-th smallest: ties over-prune, the floor under-prunes and
//     p = 0 still prunes one weight per block. Here a matrix loses exactly
//     PruneCount(out·in, p) weights; the total is split over the blocks in
//     proportion to their widths by the largest-remainder rule (ties to the
//     lower block), and each block prunes its quota of lowest
//     (score, flat index) pairs, the lower index first among equal scores.
//   - N:M groups are aligned to the matrix (columns kM … kM+M−1): the block
//     size is rounded down to a multiple of M, where the reference counts
//     groups from the start of each block. Each row keeps exactly N per
//     group; equal scores prune the lower column first.
//   - Hinv is computed as the inverse of the reversed-order Cholesky factor,
//     not by forming H⁻¹; see hessInvCholUpper. Mathematically the same
//     factor, half the flops.

// ErrNMNotDivisible is returned (wrapped) by SparseGPT when an N:M pattern
// is asked of a matrix whose input width is not a multiple of M.
var ErrNMNotDivisible = errors.New("prune: sparsegpt: input width is not a multiple of M")

// ErrHessianNotPD is returned (wrapped) when H + damp·I has no Cholesky
// factorisation, i.e. it is not numerically positive definite.
var ErrHessianNotPD = errors.New("prune: sparsegpt: Hessian is not positive definite after dampening")

// SparseGPTConfig selects the pattern and the algorithm's constants.
type SparseGPTConfig struct {
	Sparsity  float64 // fraction of weights pruned, in [0, 1); ignored when M > 0
	N, M      int     // when M > 0: keep N of every M consecutive inputs of a row
	BlockSize int     // columns per lazy-update block; 0 selects 128
	PercDamp  float64 // dampening as a fraction of mean(diag H); 0 selects 0.01
	// Mask, when set (out×in), fixes which weights are pruned: no
	// selection happens (Sparsity, N, M are not used) and the sweep only
	// reconstructs the kept weights with the OBS updates — SparseGPT's
	// solve for a mask chosen elsewhere (UniPruning's extract
	// --reconstruct obs). Dead inputs are zeroed as always.
	Mask *Mask
}

// SGPTResult is the outcome of SparseGPT on one matrix.
type SGPTResult struct {
	Keep   []bool  // out×in row-major; false = pruned (weight exactly 0); dead inputs may be kept at 0
	Pruned int     // number of false entries of Keep
	Loss   float64 // Σ over pruned weights of w²/(2·Hinv_jj²), the reference's "error"
}

// SGPTInverse is the per-Hessian part of SparseGPT, shareable by every
// matrix that reads the same input (q/k/v, gate/up).
type SGPTInverse struct {
	N    int
	U    []float64 // upper Cholesky factor of (H + damp·I)⁻¹, N×N row-major
	Dead []bool    // inputs with H_jj = 0: their weights are zeroed
	Damp float64   // the dampening added to the diagonal
}

const (
	sgptDefaultBlock = 128
	sgptDefaultDamp  = 0.01
)

// NewSGPTInverse dampens a copy of h and factors it (h is not modified; the
// copy, N² float64, becomes U). percDamp ≤ 0 selects 0.01.
func NewSGPTInverse(h *Hessian, percDamp float64) (*SGPTInverse, error) {
	n := h.N
	if n <= 0 || len(h.H) != n*n {
		return nil, fmt.Errorf("prune: sparsegpt: Hessian N=%d with %d entries", n, len(h.H))
	}
	if !(percDamp > 0) {
		percDamp = sgptDefaultDamp
	}
	for i, v := range h.H {
		if math.IsInf(v, 0) || v != v {
			return nil, fmt.Errorf("prune: sparsegpt: Hessian entry (%d,%d) = %v", i/n, i%n, v)
		}
	}
	u := slices.Clone(h.H)
	dead := make([]bool, n)
	var diagSum float64
	for j := range n {
		if u[j*n+j] == 0 {
			u[j*n+j] = 1
			dead[j] = true
		}
		diagSum += u[j*n+j]
	}
	damp := percDamp * (diagSum / float64(n))
	for j := range n {
		u[j*n+j] += damp
	}
	if col := hessInvCholUpper(u, n); col >= 0 {
		return nil, fmt.Errorf("%w (N=%d, damp=%g, non-positive pivot near column %d)",
			ErrHessianNotPD, n, damp, col)
	}
	return &SGPTInverse{N: n, U: u, Dead: dead, Damp: damp}, nil
}

// SparseGPT prunes the out×in row-major w in place with the Hessian of its
// inputs: pruned weights become 0 and the others take the OBS updates. h is
// not modified. The work runs in float64 on all available CPUs; the result
// does not depend on their number.
func SparseGPT(w []float32, out, in int, h *Hessian, cfg SparseGPTConfig) (*SGPTResult, error) {
	if h == nil || h.N != in {
		return nil, fmt.Errorf("prune: sparsegpt: Hessian size does not match %d inputs", in)
	}
	if err := sgptCheck(len(w), out, in, &cfg); err != nil {
		return nil, err
	}
	inv, err := NewSGPTInverse(h, cfg.PercDamp)
	if err != nil {
		return nil, err
	}
	return SparseGPTWithInverse(w, out, in, inv, cfg)
}

// SparseGPTWithInverse is SparseGPT with a precomputed inverse factor;
// cfg.PercDamp is not used (the dampening is inv's).
func SparseGPTWithInverse(w []float32, out, in int, inv *SGPTInverse, cfg SparseGPTConfig) (*SGPTResult, error) {
	if inv == nil || inv.N != in {
		return nil, fmt.Errorf("prune: sparsegpt: inverse factor size does not match %d inputs", in)
	}
	if err := sgptCheck(len(w), out, in, &cfg); err != nil {
		return nil, err
	}
	w64 := make([]float64, len(w))
	for i, v := range w {
		if math.IsInf(float64(v), 0) || v != v {
			return nil, fmt.Errorf("prune: sparsegpt: non-finite weight at row %d, column %d", i/in, i%in)
		}
		w64[i] = float64(v)
	}
	res := sgptRun(w64, out, in, inv, cfg)
	for i, v := range w64 {
		w[i] = float32(v)
	}
	return res, nil
}

// sgptCheck validates shapes and the pattern and fills in the defaults.
func sgptCheck(n, out, in int, cfg *SparseGPTConfig) error {
	if out <= 0 || in <= 0 || n != out*in {
		return fmt.Errorf("prune: sparsegpt: %d weights for a %d×%d matrix", n, out, in)
	}
	if cfg.BlockSize <= 0 {
		cfg.BlockSize = sgptDefaultBlock
	}
	if !(cfg.PercDamp > 0) {
		cfg.PercDamp = sgptDefaultDamp
	}
	if cfg.Mask != nil {
		if cfg.Mask.Out != out || cfg.Mask.In != in {
			return fmt.Errorf("prune: sparsegpt: fixed %d×%d mask for a %d×%d matrix", cfg.Mask.Out, cfg.Mask.In, out, in)
		}
		cfg.N, cfg.M = 0, 0
		return nil
	}
	switch {
	case cfg.M < 0 || (cfg.M > 0 && (cfg.N < 1 || cfg.N > cfg.M)):
		return fmt.Errorf("prune: sparsegpt: bad pattern %d:%d", cfg.N, cfg.M)
	case cfg.M > 0 && in%cfg.M != 0:
		return fmt.Errorf("%w (in=%d, M=%d)", ErrNMNotDivisible, in, cfg.M)
	case cfg.M > 0:
		cfg.BlockSize = max(cfg.BlockSize-cfg.BlockSize%cfg.M, cfg.M)
	case !(cfg.Sparsity >= 0 && cfg.Sparsity < 1):
		return fmt.Errorf("prune: sparsegpt: sparsity %v outside [0, 1)", cfg.Sparsity)
	}
	return nil
}

// sgptState is one run of the column sweep over a float64 copy of W.
type sgptState struct {
	w       []float64 // out×in, updated in place
	out, in int
	u       []float64 // Hinv, in×in upper
	keep    []bool
	rowLoss []float64 // Σ (w−q)²/d² per row
	errs    []float64 // out×block: the scaled errors of the current block
	score   []float64 // out×block selection scratch (unstructured)
	idx     []int32
	n, m    int // N:M pattern (m = 0: unstructured)
}

// sgptRun prunes the validated float64 matrix w in place.
func sgptRun(w []float64, out, in int, inv *SGPTInverse, cfg SparseGPTConfig) *SGPTResult {
	bs := cfg.BlockSize
	s := &sgptState{
		w: w, out: out, in: in, u: inv.U,
		keep:    make([]bool, out*in),
		rowLoss: make([]float64, out),
		errs:    make([]float64, out*bs),
	}
	if cfg.M > 0 {
		s.n, s.m = cfg.N, cfg.M
	}
	fixed := cfg.Mask != nil
	if fixed {
		cfg.Mask.keepInto(s.keep)
	} else {
		for i := range s.keep {
			s.keep[i] = true
		}
	}
	for j, d := range inv.Dead {
		if d {
			for r := range out {
				w[r*in+j] = 0
			}
		}
	}
	var quotas []int
	if s.m == 0 && !fixed {
		quotas = sgptBlockQuotas(PruneCount(out*in, cfg.Sparsity), in, bs)
		s.score, s.idx = make([]float64, out*bs), make([]int32, out*bs)
	}
	for b, i1 := 0, 0; i1 < in; b, i1 = b+1, i1+bs {
		i2 := min(i1+bs, in)
		if quotas != nil {
			s.selectBlock(i1, i2, quotas[b])
		}
		hessParallel(out, func(r0, r1 int) { s.sweepRows(r0, r1, i1, i2) })
		s.propagate(i1, i2)
	}
	res := &SGPTResult{Keep: s.keep}
	for _, l := range s.rowLoss {
		res.Loss += l / 2
	}
	for _, k := range s.keep {
		if !k {
			res.Pruned++
		}
	}
	return res
}

// sgptBlockQuotas splits total pruned weights over the column blocks of
// width bs (the last one possibly narrower) in proportion to their widths:
// floor of the exact share, then one more to the largest remainders, ties
// to the lower block.
func sgptBlockQuotas(total, in, bs int) []int {
	nb := (in + bs - 1) / bs
	q := make([]int, nb)
	rem := make([]int, nb)
	order := make([]int, nb)
	left := total
	for b := range nb {
		width := min(bs, in-b*bs)
		q[b] = total * width / in
		rem[b] = total * width % in
		order[b] = b
		left -= q[b]
	}
	slices.SortStableFunc(order, func(a, b int) int { return rem[b] - rem[a] })
	for _, b := range order[:left] {
		q[b]++
	}
	return q
}

// selectBlock marks the quota lowest scores w²/Hinv_jj² of columns [i1, i2)
// as pruned, scores taken on the weights as updated by earlier blocks.
func (s *sgptState) selectBlock(i1, i2, quota int) {
	if quota == 0 {
		return
	}
	cnt := i2 - i1
	score, idx := s.score[:s.out*cnt], s.idx[:s.out*cnt]
	for r := range s.out {
		row := s.w[r*s.in+i1 : r*s.in+i2]
		for c, v := range row {
			d := s.u[(i1+c)*s.in+i1+c]
			score[r*cnt+c] = v * v / (d * d)
			idx[r*cnt+c] = int32(r*cnt + c)
		}
	}
	sgptSelectLowest(idx, score, quota)
	for _, k := range idx[:quota] {
		s.keep[int(k)/cnt*s.in+i1+int(k)%cnt] = false
	}
}

// sweepRows runs the exact column-by-column OBS sweep of block [i1, i2) on
// rows [r0, r1). Rows are independent once the block's mask is fixed (and
// N:M masks are per row), so the sweep parallelises over rows. A pruned
// weight w at column i becomes 0 and leaves err = w/Hinv_ii, which is
// subtracted, times Hinv's row i, from the row's later in-block columns;
// kept weights have err = 0 and change nothing.
func (s *sgptState) sweepRows(r0, r1, i1, i2 int) {
	in, cnt := s.in, i2-i1
	var nmScore []float64
	var nmOrder []int
	if s.m > 0 {
		nmScore, nmOrder = make([]float64, s.m), make([]int, s.m)
	}
	for r := r0; r < r1; r++ {
		row, keep := s.w[r*in:(r+1)*in], s.keep[r*in:(r+1)*in]
		errs := s.errs[r*cnt : (r+1)*cnt]
		for i := i1; i < i2; i++ {
			if s.m > 0 && (i-i1)%s.m == 0 {
				s.selectGroup(row, keep, i, nmScore, nmOrder)
			}
			if keep[i] {
				errs[i-i1] = 0
				continue
			}
			wv, d := row[i], s.u[i*in+i]
			s.rowLoss[r] += wv * wv / (d * d)
			e := wv / d
			errs[i-i1] = e
			row[i] = 0
			hrow := s.u[i*in+i+1 : i*in+i2]
			seg := row[i+1 : i2]
			for j, h := range hrow {
				seg[j] -= float64(e * h) // no FMA: same bits on every platform
			}
		}
	}
}

// selectGroup prunes the M−N lowest w²/Hinv_jj² of the row's group starting
// at column i, on the weights as updated so far (as the reference does).
func (s *sgptState) selectGroup(row []float64, keep []bool, i int, score []float64, order []int) {
	for j := range s.m {
		d := s.u[(i+j)*s.in+i+j]
		score[j] = row[i+j] * row[i+j] / (d * d)
		order[j] = j
	}
	// Insertion sort by (score, column): M is tiny.
	for a := 1; a < s.m; a++ {
		for b := a; b > 0 && score[order[b]] < score[order[b-1]]; b-- {
			order[b], order[b-1] = order[b-1], order[b]
		}
	}
	for _, j := range order[:s.m-s.n] {
		keep[i+j] = false
	}
}

// propagate applies the block's deferred updates to the later columns:
// W[:, i2:] −= Err·Hinv[i1:i2, i2:]. Err is zero for kept weights, and
// gonum's gemm skips zero multipliers, so the cost scales with sparsity.
func (s *sgptState) propagate(i1, i2 int) {
	if i2 == s.in {
		return
	}
	cnt := i2 - i1
	a := blas64.General{Rows: s.out, Cols: cnt, Stride: cnt, Data: s.errs}
	b := blas64.General{Rows: cnt, Cols: s.in - i2, Stride: s.in, Data: s.u[i1*s.in+i2:]}
	c := blas64.General{Rows: s.out, Cols: s.in - i2, Stride: s.in, Data: s.w[i2:]}
	blas64.Gemm(blas.NoTrans, blas.NoTrans, -1, a, b, 1, c)
}

// sgptSelectLowest reorders idx so that idx[:k] holds the k entries with
// the lowest (score[idx], idx) keys, in no particular order. Keys are
// distinct, so a median-of-three quickselect is O(n) in practice; after
// 2·log2(n) rounds it falls back to sorting what is left (O(n log n)).
func sgptSelectLowest(idx []int32, score []float64, k int) {
	less := func(a, b int32) bool {
		sa, sb := score[a], score[b]
		return sa < sb || (sa == sb && a < b)
	}
	// Invariant: idx[:lo] < idx[lo:hi] < idx[hi:] and lo ≤ k ≤ hi.
	lo, hi := 0, len(idx)
	for depth := 2 * bits.Len(uint(len(idx))); hi-lo > 16 && depth > 0; depth-- {
		p := lo + sgptPartition(idx[lo:hi], less)
		switch {
		case p == k || p == k-1:
			return
		case p > k:
			hi = p
		default:
			lo = p + 1
		}
	}
	slices.SortFunc(idx[lo:hi], func(a, b int32) int {
		switch {
		case a == b:
			return 0
		case less(a, b):
			return -1
		}
		return 1
	})
}

// sgptPartition partitions v around the median of its first, middle and
// last keys and returns the pivot's final position.
func sgptPartition(v []int32, less func(a, b int32) bool) int {
	n := len(v)
	a, b, c := 0, n/2, n-1
	if less(v[b], v[a]) {
		a, b = b, a
	}
	if less(v[c], v[b]) {
		b = c
		if less(v[b], v[a]) {
			b = a
		}
	}
	v[b], v[n-1] = v[n-1], v[b]
	pivot, store := v[n-1], 0
	for i := range n - 1 {
		if less(v[i], pivot) {
			v[i], v[store] = v[store], v[i]
			store++
		}
	}
	v[store], v[n-1] = v[n-1], v[store]
	return store
}
