package prune

import (
	"errors"
	"fmt"
	"math"
)

// Exact selection over partitioned data (DESIGN §3.4).
//
// Values are ranked by Key, the order-preserving bits of |x|. The k-th
// smallest key over the union of all partitions is found by radix selection
// on the key's two 16-bit halves: round 0 histograms the high halves of
// every key, round 1 the low halves of the keys in the chosen high bucket;
// round 1's bucket of the answer is, per partition, its count of keys equal
// to the answer (or, past selRetainMaxParts partitions, a CountEqual request
// of 8 B each). Each round moves HistBuckets×8 B = 512 KiB per partition,
// whatever the model size. The result is exact: integer counts do not care
// how values are spread over partitions.

// HistBuckets is the number of buckets of every histogram round.
const HistBuckets = 1 << 16

// keyInf is Key(±Inf); larger keys are NaNs.
const keyInf = 0x7f800000

// Key returns the order-preserving key of |x|: the IEEE-754 bits of x with
// the sign cleared, so −0 and +0 share key 0 and larger magnitudes have
// larger keys (+Inf = 0x7f800000). A NaN's key is above +Inf's; callers
// must reject NaN (CheckFinite, or the Partition's own check).
func Key(x float32) uint32 { return math.Float32bits(x) &^ (1 << 31) }

// CheckFinite returns an error locating the first NaN or ±Inf of values.
func CheckFinite(values []float32) error {
	for i, v := range values {
		if Key(v) >= keyInf {
			return fmt.Errorf("prune: non-finite value %v at index %d", v, i)
		}
	}
	return nil
}

// HistQuery asks a partition for one histogram round. Round 0: histogram of
// key>>16 over every key (Prefix unused). Round 1: histogram of key&0xffff
// over the keys whose key>>16 == Prefix.
type HistQuery struct {
	Round  int
	Prefix uint32
}

func (q HistQuery) check(dst []uint64) error {
	if q.Round != 0 && q.Round != 1 {
		return fmt.Errorf("prune: histogram round %d (want 0 or 1)", q.Round)
	}
	if q.Prefix >= HistBuckets {
		return fmt.Errorf("prune: histogram prefix %#x exceeds 16 bits", q.Prefix)
	}
	if len(dst) != HistBuckets {
		return fmt.Errorf("prune: histogram buffer of %d buckets (want %d)", len(dst), HistBuckets)
	}
	return nil
}

// Partition is a share of the values being ranked, e.g. one shard's target
// matrices. Its values' position order (matrix order, then flat index) is
// the tie order KeepLargest uses within it.
type Partition interface {
	// Histogram overwrites dst (HistBuckets counts) with the histogram q
	// asks for; it fails if a value is NaN.
	Histogram(q HistQuery, dst []uint64) error
	// CountEqual returns how many of the partition's keys equal key.
	CountEqual(key uint32) (uint64, error)
}

// Selection is the k-th smallest key over a list of partitions.
type Selection struct {
	Key      uint32   // the k-th smallest key
	Value    float32  // its magnitude, math.Float32frombits(Key)
	Below    uint64   // keys < Key over all partitions
	Equal    uint64   // keys == Key over all partitions
	EqualPer []uint64 // keys == Key per partition, in partition order
}

// selRetainMaxParts bounds the partitions whose round-1 histograms a
// selection keeps (512 KiB each, 32 MiB at most): beyond it, the per-
// partition counts of the answer's key come from CountEqual instead, which
// costs the partitions one more pass over their values.
const selRetainMaxParts = 64

// selector runs the rounds of one selection, merging the partitions'
// histograms into one buffer in partition order.
type selector struct {
	parts   []Partition
	hist    []uint64   // merged histogram of the last round
	scratch []uint64   // one partition's answer, when per is nil
	per     [][]uint64 // per-partition answers of the last round, or nil
}

func newSelector(parts []Partition) *selector {
	s := &selector{parts: parts, hist: make([]uint64, HistBuckets)}
	if len(parts) > selRetainMaxParts {
		s.scratch = make([]uint64, HistBuckets)
		return s
	}
	s.per = make([][]uint64, len(parts))
	for i := range s.per {
		s.per[i] = make([]uint64, HistBuckets)
	}
	return s
}

// merge fills s.hist with the sum of every partition's answer to q and
// returns the total count.
func (s *selector) merge(q HistQuery) (uint64, error) {
	clear(s.hist)
	for pi, p := range s.parts {
		buf := s.scratch
		if s.per != nil {
			buf = s.per[pi]
		}
		if err := p.Histogram(q, buf); err != nil {
			return 0, fmt.Errorf("partition %d: %w", pi, err)
		}
		for b, c := range buf {
			s.hist[b] += c
		}
	}
	var n uint64
	for _, c := range s.hist {
		n += c
	}
	return n, nil
}

// kth completes a selection whose round 0 is in s.hist (total n).
func (s *selector) kth(k, n uint64) (Selection, error) {
	if k < 1 || k > n {
		return Selection{}, fmt.Errorf("prune: rank %d outside [1, %d]", k, n)
	}
	hi, before := pickBucket64(s.hist, k)
	inBucket := s.hist[hi]
	n1, err := s.merge(HistQuery{Round: 1, Prefix: hi})
	if err != nil {
		return Selection{}, err
	}
	if n1 != inBucket {
		return Selection{}, fmt.Errorf("prune: partitions changed between rounds (bucket %#x: %d then %d keys)", hi, inBucket, n1)
	}
	lo, before1 := pickBucket64(s.hist, k-before)
	sel := Selection{Key: hi<<16 | lo, Below: before + before1, Equal: s.hist[lo]}
	sel.Value = math.Float32frombits(sel.Key)
	if s.per != nil {
		sel.EqualPer = make([]uint64, len(s.parts))
		for pi, h := range s.per {
			sel.EqualPer[pi] = h[lo]
		}
		return sel, nil
	}
	per, eq, err := s.countEqual(sel.Key)
	if err != nil {
		return Selection{}, err
	}
	if eq != sel.Equal {
		return Selection{}, fmt.Errorf("prune: partitions changed between rounds (key %#x: %d then %d)", sel.Key, sel.Equal, eq)
	}
	sel.EqualPer = per
	return sel, nil
}

// countEqual asks every partition for its count of key.
func (s *selector) countEqual(key uint32) (per []uint64, total uint64, err error) {
	per = make([]uint64, len(s.parts))
	for pi, p := range s.parts {
		if per[pi], err = p.CountEqual(key); err != nil {
			return nil, 0, fmt.Errorf("partition %d: %w", pi, err)
		}
		total += per[pi]
	}
	return per, total, nil
}

// pickBucket64 returns the bucket holding the rank-th (1-based) count and
// the total of the lower buckets; rank must be ≤ the histogram's total.
func pickBucket64(hist []uint64, rank uint64) (bucket uint32, before uint64) {
	for b, c := range hist {
		if rank <= before+c {
			return uint32(b), before
		}
		before += c
	}
	panic("prune: rank beyond histogram total")
}

// SelectKth returns the k-th smallest Key (1-based rank) over the union of
// the partitions' values; 1 ≤ k ≤ total, else an error.
func SelectKth(parts []Partition, k uint64) (Selection, error) {
	s := newSelector(parts)
	n, err := s.merge(HistQuery{Round: 0})
	if err != nil {
		return Selection{}, err
	}
	return s.kth(k, n)
}

// Threshold returns the model-wide τ of DESIGN §2.3: with N values over all
// partitions and k = round(fraction·N) (math.Round), τ is the k-th smallest
// |value|, so that Γ = sign(z)·max(|z|−τ, 0) zeroes the k smallest |z| —
// and any value tied with the k-th as well: a scalar threshold cannot split
// ties, so Below < k ≤ Below+Equal.
//
// When k = 0 (fraction·N < ½, including N = 0), τ = 0: the shrinkage is then
// the identity, Γ = z, and only values already zero are zero. The returned
// Selection then describes key 0 (Below 0, Equal = number of zeros).
// fraction must be in [0, 1].
func Threshold(parts []Partition, fraction float64) (float32, Selection, error) {
	if !(fraction >= 0 && fraction <= 1) {
		return 0, Selection{}, fmt.Errorf("prune: threshold fraction %v outside [0, 1]", fraction)
	}
	s := newSelector(parts)
	n, err := s.merge(HistQuery{Round: 0})
	if err != nil {
		return 0, Selection{}, err
	}
	k := min(uint64(math.Round(fraction*float64(n))), n)
	if k == 0 {
		per, eq, err := s.countEqual(0)
		if err != nil {
			return 0, Selection{}, err
		}
		return 0, Selection{Equal: eq, EqualPer: per}, nil
	}
	sel, err := s.kth(k, n)
	if err != nil {
		return 0, Selection{}, err
	}
	return sel.Value, sel, nil
}

// Allocation is a global keep-allocation: partition p prunes every value
// whose Key is below Key, plus the first PrunedEqual[p] values whose Key
// equals Key in its position order (matrix order, then flat index). All
// other values are kept.
type Allocation struct {
	Keep, Prune uint64   // kept and pruned values over all partitions
	Key         uint32   // boundary key (0 when nothing is pruned)
	Value       float32  // math.Float32frombits(Key)
	PrunedEqual []uint64 // per partition: pruned values with Key == Key
}

// KeepLargest allocates a global mask that keeps exactly keep values, those
// with the largest |value| over all partitions (DESIGN §2.4, allocation
// global). Ties at the boundary are pruned in (partition order, position)
// order, lowest first — the same convention as the per-matrix masks, so
// with partitions in layer order and matrices in (layer, matrix) order the
// ties go by (layer, matrix, row, column). keep must be ≤ the total.
func KeepLargest(parts []Partition, keep uint64) (Allocation, error) {
	s := newSelector(parts)
	n, err := s.merge(HistQuery{Round: 0})
	if err != nil {
		return Allocation{}, err
	}
	if keep > n {
		return Allocation{}, fmt.Errorf("prune: cannot keep %d of %d values", keep, n)
	}
	a := Allocation{Keep: keep, Prune: n - keep, PrunedEqual: make([]uint64, len(parts))}
	if a.Prune == 0 {
		return a, nil
	}
	sel, err := s.kth(a.Prune, n)
	if err != nil {
		return Allocation{}, err
	}
	a.Key, a.Value = sel.Key, sel.Value
	ties := a.Prune - sel.Below // boundary ties to prune, 1 ≤ ties ≤ Equal
	for pi, e := range sel.EqualPer {
		a.PrunedEqual[pi] = min(e, ties)
		ties -= a.PrunedEqual[pi]
	}
	return a, nil
}

// SlicePartition is a Partition over in-memory matrices. Shapes (out, in
// per matrix) are needed by MaskWith only; Names, if set, label matrices in
// error messages.
type SlicePartition struct {
	Values [][]float32
	Shapes [][2]int
	Names  []string
}

// errNaNKey is the sentinel CountEqual reports for a NaN key.
var errNaNKey = errors.New("prune: CountEqual of a NaN key")

func (p SlicePartition) nanError(m, idx int) error {
	name := fmt.Sprintf("matrix %d", m)
	if m < len(p.Names) {
		name = p.Names[m]
	}
	if m < len(p.Shapes) && p.Shapes[m][1] > 0 {
		in := p.Shapes[m][1]
		return fmt.Errorf("prune: NaN in %s at row %d, column %d", name, idx/in, idx%in)
	}
	return fmt.Errorf("prune: NaN in %s at index %d", name, idx)
}

// Histogram implements Partition.
func (p SlicePartition) Histogram(q HistQuery, dst []uint64) error {
	if err := q.check(dst); err != nil {
		return err
	}
	clear(dst)
	for m, vals := range p.Values {
		var bad int
		if q.Round == 0 {
			bad = histHigh(vals, dst)
		} else {
			bad = histLow(vals, q.Prefix, dst)
		}
		if bad >= 0 {
			return p.nanError(m, bad)
		}
	}
	return nil
}

// histHigh adds the high key halves of vals to dst; it returns the index of
// the first NaN (its counts are then partial), or −1.
func histHigh(vals []float32, dst []uint64) int {
	for idx, v := range vals {
		k := Key(v)
		if k > keyInf {
			return idx
		}
		dst[k>>16]++
	}
	return -1
}

// histLow adds the low key halves of the values whose high half is prefix.
func histLow(vals []float32, prefix uint32, dst []uint64) int {
	for idx, v := range vals {
		k := Key(v)
		if k > keyInf {
			return idx
		}
		if k>>16 == prefix {
			dst[k&0xffff]++
		}
	}
	return -1
}

// CountEqual implements Partition.
func (p SlicePartition) CountEqual(key uint32) (uint64, error) {
	if key > keyInf {
		return 0, errNaNKey
	}
	var n uint64
	for m, vals := range p.Values {
		for idx, v := range vals {
			k := Key(v)
			if k > keyInf {
				return 0, p.nanError(m, idx)
			}
			if k == key {
				n++
			}
		}
	}
	return n, nil
}

// MaskWith builds the masks of this partition's matrices under a, this
// partition being number part of the list a was allocated over.
func (p SlicePartition) MaskWith(a Allocation, part int) ([]*Mask, error) {
	if part < 0 || part >= len(a.PrunedEqual) {
		return nil, fmt.Errorf("prune: partition %d outside an allocation over %d", part, len(a.PrunedEqual))
	}
	if len(p.Shapes) != len(p.Values) {
		return nil, fmt.Errorf("prune: %d shapes for %d matrices", len(p.Shapes), len(p.Values))
	}
	quota := a.PrunedEqual[part]
	masks := make([]*Mask, len(p.Values))
	for m, vals := range p.Values {
		out, in := p.Shapes[m][0], p.Shapes[m][1]
		if n, err := maskSize(out, in); err != nil || n != len(vals) {
			return nil, fmt.Errorf("prune: matrix %d: %d values for shape %d×%d", m, len(vals), out, in)
		}
		for idx, v := range vals {
			if v != v {
				return nil, p.nanError(m, idx)
			}
		}
		masks[m] = NewMask(out, in)
		quota = keepAbove(masks[m].Bits, vals, a.Key, quota, true)
	}
	if quota != 0 {
		return nil, fmt.Errorf("prune: partition %d has %d fewer boundary values than allocated (values changed?)", part, quota)
	}
	return masks, nil
}
