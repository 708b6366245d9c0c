package prune

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// ErrNotDivisible is returned (wrapped) by NM when the input width is not a
// multiple of M; callers keep that matrix dense and report it (DESIGN §2.4).
var ErrNotDivisible = errors.New("input width is not a multiple of the N:M group size")

// scoreKey maps a score to a uint32 whose unsigned order is the score's
// numeric order: −Inf lowest, +Inf highest, −0 and +0 equal. NaN must be
// rejected by the caller (it would land beyond ±Inf). It is branch-free
// but for the rare −0, because signs of raw scores are unpredictable.
func scoreKey(x float32) uint32 {
	b := math.Float32bits(x)
	k := b ^ (uint32(int32(b)>>31) | 1<<31) // negative: flip all; else set the sign bit
	if k == 1<<31-1 {
		k = 1 << 31 // −0 lands just below +0: merge them
	}
	return k
}

// checkScores validates the shape of a score matrix.
func checkScores(scores []float32, out, in int) error {
	if out < 0 || in < 0 || len(scores) != out*in {
		return fmt.Errorf("prune: %d scores for a %d×%d matrix", len(scores), out, in)
	}
	return nil
}

// checkSparsity rejects sparsities outside [0, 1) and NaN.
func checkSparsity(sparsity float64) error {
	if !(sparsity >= 0 && sparsity < 1) {
		return fmt.Errorf("prune: sparsity %v outside [0, 1)", sparsity)
	}
	return nil
}

// PruneCount returns how many of n elements a sparsity prunes. As DESIGN
// §2.4 and the released code, the count KEPT is round(n·(1−p)) with
// Python's rounding (halves to even); the rest is pruned.
func PruneCount(n int, sparsity float64) int {
	return n - int(math.RoundToEven(float64(n)*(1-sparsity)))
}

// nanError locates the first NaN of a score matrix.
func nanError(scores []float32, in int) error {
	for k, v := range scores {
		if v != v {
			return fmt.Errorf("prune: NaN score at row %d, column %d", k/in, k%in)
		}
	}
	return nil
}

// Unstructured keeps all but the PruneCount(out·in, sparsity) lowest scores
// of the matrix. Ties are pruned in ascending flat index. The selection is a
// two-round radix select on scoreKey (O(n), three passes over the scores),
// so it never sorts.
func Unstructured(scores []float32, out, in int, sparsity float64) (*Mask, error) {
	if err := checkScores(scores, out, in); err != nil {
		return nil, err
	}
	if err := checkSparsity(sparsity); err != nil {
		return nil, err
	}
	if uint64(len(scores)) > math.MaxUint32 {
		return nil, fmt.Errorf("prune: %d×%d matrix too large for a 32-bit count", out, in)
	}
	k := PruneCount(len(scores), sparsity)
	m := NewMask(out, in)
	if k == 0 {
		if err := nanError(scores, in); err != nil {
			return nil, err
		}
		m.Fill(true)
		return m, nil
	}
	thr, quota, err := radixSelectScores(scores, in, uint32(k))
	if err != nil {
		return nil, err
	}
	keepAbove(m.Bits, scores, thr, uint64(quota), false)
	return m, nil
}

// radixSelectScores finds the key thr of the k-th lowest score (1-based)
// and how many entries equal to thr are among the k lowest (quota): the
// k lowest are every key < thr plus the first quota keys == thr.
func radixSelectScores(scores []float32, in int, k uint32) (thr, quota uint32, err error) {
	hist := make([]uint32, 1<<16)
	for idx, v := range scores {
		if v != v {
			return 0, 0, fmt.Errorf("prune: NaN score at row %d, column %d", idx/in, idx%in)
		}
		hist[scoreKey(v)>>16]++
	}
	hi, before := pickBucket32(hist, k)
	clear(hist)
	for _, v := range scores {
		if key := scoreKey(v); key>>16 == hi {
			hist[key&0xffff]++
		}
	}
	lo, before2 := pickBucket32(hist, k-before)
	return hi<<16 | lo, k - before - before2, nil
}

// pickBucket32 returns the bucket holding the rank-th (1-based) entry and
// the number of entries in lower buckets. rank must be ≤ the total.
func pickBucket32(hist []uint32, rank uint32) (bucket, before uint32) {
	for b, c := range hist {
		if rank <= before+c {
			return uint32(b), before
		}
		before += c
	}
	panic("prune: rank beyond histogram total")
}

// keepAbove writes the keep-bits of vals: key > thr is kept, key < thr is
// pruned and of the keys == thr the first quota (in index order) are pruned.
// The key is Key(v) when abs is set, scoreKey(v) otherwise. It returns the
// unused quota. The words are written whole: bitsOut must be sized for vals.
//
// The key > thr test is random for half the values, so it feeds the word
// arithmetically; only the rare tie takes a branch.
func keepAbove(bitsOut []uint64, vals []float32, thr uint32, quota uint64, abs bool) uint64 {
	n := len(vals)
	for w := range bitsOut {
		base := w * 64
		var word uint64
		for b, v := range vals[base:min(base+64, n)] {
			k := scoreKey(v)
			if abs {
				k = Key(v)
			}
			var keep uint64
			if k > thr {
				keep = 1
			}
			if k == thr {
				if quota == 0 {
					keep = 1
				} else {
					quota--
				}
			}
			word |= keep << b
		}
		bitsOut[w] = word
	}
	return quota
}

// RowQuotas splits PruneCount(out·in, sparsity) pruned weights over out
// rows of in weights, so that a per-row method prunes exactly as many
// weights per matrix as a per-matrix one (fair comparisons). Every row's
// exact share is in·p; all rows have the same width, so every row gets the
// floor of the total's even split and the remainder goes one each to the
// largest remainders — all equal — with ties to the lower row index.
func RowQuotas(out, in int, sparsity float64) []int {
	total := PruneCount(out*in, sparsity)
	q := make([]int, out)
	if out == 0 {
		return q
	}
	base, extra := total/out, total%out
	for i := range q {
		q[i] = base
		if i < extra {
			q[i]++
		}
	}
	return q
}

// UnstructuredByRow prunes the lowest scores of every row (Wanda's
// comparison group), RowQuotas(out, in, sparsity)[i] in row i, so the
// matrix loses exactly PruneCount(out·in, sparsity) weights; ties are
// pruned in ascending column.
func UnstructuredByRow(scores []float32, out, in int, sparsity float64) (*Mask, error) {
	if err := checkScores(scores, out, in); err != nil {
		return nil, err
	}
	if err := checkSparsity(sparsity); err != nil {
		return nil, err
	}
	if err := nanError(scores, in); err != nil {
		return nil, err
	}
	m := NewMask(out, in)
	m.Fill(true)
	buf := make([]uint64, in)
	for i, k := range RowQuotas(out, in, sparsity) {
		if k > 0 {
			pruneLowest(m, scores[i*in:(i+1)*in], i*in, k, buf)
		}
	}
	return m, nil
}

// pruneLowest clears the mask bits of the k lowest of vals, which start at
// flat index base. Ties go by position because the composite key carries
// the position in its low 32 bits, which also makes every key distinct.
func pruneLowest(m *Mask, vals []float32, base, k int, buf []uint64) {
	buf = buf[:len(vals)]
	for c, v := range vals {
		buf[c] = uint64(scoreKey(v))<<32 | uint64(c)
	}
	selectSmallestU64(buf, k)
	for _, x := range buf[:k] {
		f := base + int(uint32(x))
		m.Bits[f>>6] &^= 1 << (f & 63)
	}
}

// NM keeps, in every row and every group of m consecutive input columns,
// the n highest scores (DESIGN §2.4); ties are pruned in ascending column.
// It returns an error wrapping ErrNotDivisible when in is not a multiple of
// m, and plain errors for n < 1, m < 2 or n ≥ m.
func NM(scores []float32, out, in, n, m int) (*Mask, error) {
	if err := checkScores(scores, out, in); err != nil {
		return nil, err
	}
	if n < 1 || m < 2 || n >= m {
		return nil, fmt.Errorf("prune: invalid N:M pattern %d:%d (want 1 ≤ N < M, M ≥ 2)", n, m)
	}
	if in%m != 0 {
		return nil, fmt.Errorf("prune: %d:%d on a %d×%d matrix: %w", n, m, out, in, ErrNotDivisible)
	}
	if err := nanError(scores, in); err != nil {
		return nil, err
	}
	mask := NewMask(out, in)
	mask.Fill(true)
	buf := make([]uint64, m)
	for g := 0; g < len(scores); g += m {
		if m <= nmRankMax {
			pruneLowestByRank(mask, scores[g:g+m], g, m-n, buf)
		} else {
			pruneLowest(mask, scores[g:g+m], g, m-n, buf)
		}
	}
	return mask, nil
}

// nmRankMax is the largest group that NM ranks by counting (m² compares)
// rather than by selection.
const nmRankMax = 16

// pruneLowestByRank is pruneLowest for small groups: an entry is pruned
// when fewer than k composite keys are below its own, counted without
// data-dependent branches (the order inside a group is random).
func pruneLowestByRank(m *Mask, vals []float32, base, k int, buf []uint64) {
	buf = buf[:len(vals)]
	for c, v := range vals {
		buf[c] = uint64(scoreKey(v))<<32 | uint64(c)
	}
	for c, x := range buf {
		rank := 0
		for _, y := range buf {
			if y < x {
				rank++
			}
		}
		var prune uint64
		if rank < k {
			prune = 1
		}
		f := base + c
		m.Bits[f>>6] &^= prune << (f & 63)
	}
}

// selectSmallestU64 reorders a so that a[:k] holds its k smallest values
// (in no particular order). The values must be distinct. It is a quickselect
// with a median-of-three pivot that falls back to sorting the remaining
// range when partitions keep coming out lopsided, so the worst case is
// O(n log n) while the expected cost is O(n).
func selectSmallestU64(a []uint64, k int) {
	lo, hi := 0, len(a)
	if k <= 0 || k >= hi {
		return
	}
	budget := 2 * bits.Len(uint(hi))
	for hi-lo > 16 {
		if budget == 0 {
			slices.Sort(a[lo:hi])
			return
		}
		budget--
		p := partitionU64(a[lo:hi]) + lo
		switch {
		case p == k:
			return
		case p < k:
			lo = p + 1
		default:
			hi = p
		}
	}
	insertionSortU64(a[lo:hi])
}

// partitionU64 partitions a around the median of its first, middle and
// last values and returns the pivot's final index: a[:p] < a[p] < a[p+1:].
func partitionU64(a []uint64) int {
	last := len(a) - 1
	mid := last / 2
	if a[mid] < a[0] {
		a[mid], a[0] = a[0], a[mid]
	}
	if a[last] < a[0] {
		a[last], a[0] = a[0], a[last]
	}
	if a[last] < a[mid] {
		a[last], a[mid] = a[mid], a[last]
	}
	a[mid], a[last] = a[last], a[mid] // pivot to the end
	pv := a[last]
	// Branch-free Lomuto: swap every value with the boundary and advance
	// the boundary only past values below the pivot; a[:store] < pv stays
	// true and the rest of the scanned range is ≥ pv.
	store := 0
	for i := 0; i < last; i++ {
		x := a[i]
		a[i] = a[store]
		a[store] = x
		var below int
		if x < pv {
			below = 1
		}
		store += below
	}
	a[store], a[last] = a[last], a[store]
	return store
}

func insertionSortU64(a []uint64) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}
