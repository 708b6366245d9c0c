package prune

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
)

// maskRefLowest is the naive reference of the ranking convention: the flat
// positions of the k lowest values by (value, position), found by sorting.
// Go's float comparison already treats −0 == +0 and orders ±Inf.
func maskRefLowest(vals []float32, k int) []int {
	pos := make([]int, len(vals))
	for i := range pos {
		pos[i] = i
	}
	slices.SortFunc(pos, func(a, b int) int {
		switch {
		case vals[a] < vals[b]:
			return -1
		case vals[a] > vals[b]:
			return 1
		}
		return a - b
	})
	return pos[:k]
}

// maskFromPruned builds a mask keeping everything but the given positions.
func maskFromPruned(out, in int, pruned []int) *Mask {
	m := NewMask(out, in)
	m.Fill(true)
	for _, f := range pruned {
		m.Set(f/in, f%in, false)
	}
	return m
}

// maskScoreKinds generates score matrices of n values, random and
// adversarial for the ranking: ties, signed zeros, denormals, infinities,
// values spanning the whole exponent range.
var maskScoreKinds = map[string]func(r *rand.Rand, n int) []float32{
	"uniform": func(r *rand.Rand, n int) []float32 {
		return maskFill(n, func(int) float32 { return r.Float32() })
	},
	"all-equal": func(r *rand.Rand, n int) []float32 {
		return maskFill(n, func(int) float32 { return 1.5 })
	},
	"few-levels": func(r *rand.Rand, n int) []float32 {
		return maskFill(n, func(int) float32 { return float32(r.IntN(4)) })
	},
	"signed-zeros": func(r *rand.Rand, n int) []float32 {
		z := []float32{0, float32(math.Copysign(0, -1)), 1e-30, -1e-30}
		return maskFill(n, func(int) float32 { return z[r.IntN(len(z))] })
	},
	"denormals": func(r *rand.Rand, n int) []float32 {
		return maskFill(n, func(int) float32 {
			b := uint32(r.IntN(8)) // few distinct denormals → ties
			if r.IntN(2) == 0 {
				b |= 1 << 31
			}
			return math.Float32frombits(b)
		})
	},
	"infinities": func(r *rand.Rand, n int) []float32 {
		return maskFill(n, func(int) float32 {
			switch r.IntN(4) {
			case 0:
				return float32(math.Inf(1))
			case 1:
				return float32(math.Inf(-1))
			}
			return float32(r.NormFloat64())
		})
	},
	"huge-range": func(r *rand.Rand, n int) []float32 {
		return maskFill(n, func(int) float32 {
			for {
				if v := math.Float32frombits(r.Uint32()); v == v {
					return v
				}
			}
		})
	},
	"one-high-bucket": func(r *rand.Rand, n int) []float32 {
		// Same top 16 key bits everywhere: only the second round decides.
		return maskFill(n, func(int) float32 { return math.Float32frombits(0x3f800000 | uint32(r.IntN(64))) })
	},
}

func maskFill(n int, f func(int) float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = f(i)
	}
	return v
}

var maskShapes = [][2]int{{1, 1}, {1, 7}, {3, 5}, {7, 64}, {5, 65}, {13, 100}, {64, 64}, {2, 1000}, {3, 33}}

var maskSparsities = []float64{0, 0.01, 0.1, 0.25, 0.3, 0.5, 0.5000001, 0.6, 0.7, 0.9, 0.99}

func TestUnstructuredMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for kind, gen := range maskScoreKinds {
		for _, sh := range maskShapes {
			out, in := sh[0], sh[1]
			scores := gen(r, out*in)
			for _, sp := range maskSparsities {
				got, err := Unstructured(scores, out, in, sp)
				if err != nil {
					t.Fatalf("%s %dx%d p=%v: %v", kind, out, in, sp, err)
				}
				k := PruneCount(out*in, sp)
				want := maskFromPruned(out, in, maskRefLowest(scores, k))
				if !got.Equal(want) {
					t.Fatalf("%s %dx%d p=%v: mask differs from the sorted reference", kind, out, in, sp)
				}
				if got.Kept() != out*in-k {
					t.Fatalf("%s %dx%d p=%v: kept %d, want %d", kind, out, in, sp, got.Kept(), out*in-k)
				}
			}
		}
	}
}

func TestUnstructuredLarge(t *testing.T) {
	// Large enough that both radix rounds see many buckets.
	r := rand.New(rand.NewPCG(3, 4))
	out, in := 300, 700
	for _, kind := range []string{"uniform", "few-levels", "huge-range", "one-high-bucket"} {
		scores := maskScoreKinds[kind](r, out*in)
		for _, sp := range []float64{0.5, 0.37} {
			got, err := Unstructured(scores, out, in, sp)
			if err != nil {
				t.Fatal(err)
			}
			want := maskFromPruned(out, in, maskRefLowest(scores, PruneCount(out*in, sp)))
			if !got.Equal(want) {
				t.Fatalf("%s p=%v: differs from reference", kind, sp)
			}
		}
	}
}

func TestPruneCountRounding(t *testing.T) {
	cases := []struct {
		n    int
		p    float64
		want int
	}{
		// Expected values printed by CPython: n - round(n*(1-p)).
		{10, 0, 0}, {10, 0.25, 2}, {3, 0.5, 1}, {5, 0.5, 3}, {4, 0.5, 2},
		{10, 0.04, 0}, {10, 0.05, 0}, {10, 0.45, 4}, {1, 0.4999, 0}, {1, 0.5, 1},
		{4096 * 11008, 0.5, 4096 * 11008 / 2}, {7, 0.999, 7},
	}
	for _, c := range cases {
		if got := PruneCount(c.n, c.p); got != c.want {
			t.Errorf("PruneCount(%d, %v) = %d, want %d", c.n, c.p, got, c.want)
		}
	}
	// Exact pruned counts through Unstructured, incl. halves and "prune all".
	for _, c := range cases[:10] {
		m, err := Unstructured(make([]float32, c.n), 1, c.n, c.p)
		if err != nil {
			t.Fatal(err)
		}
		if pruned := c.n - m.Kept(); pruned != c.want {
			t.Errorf("Unstructured n=%d p=%v pruned %d, want %d", c.n, c.p, pruned, c.want)
		}
	}
	m, _ := Unstructured([]float32{3, 1}, 1, 2, 0.75) // round(1.5) = 2: all pruned
	if m.Kept() != 0 {
		t.Errorf("n=2 p=0.75 kept %d, want 0", m.Kept())
	}
}

func TestUnstructuredTiesByPosition(t *testing.T) {
	// Scores: 1 2 1 | 2 1 0; prune 3 → the 0, then the first two 1s.
	s := []float32{1, 2, 1, 2, 1, 0}
	m, err := Unstructured(s, 2, 3, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	want := []bool{false, true, false, true, true, false}
	for k, w := range want {
		if m.Keep(k/3, k%3) != w {
			t.Fatalf("position %d: keep=%v, want %v", k, m.Keep(k/3, k%3), w)
		}
	}
	// −0 and +0 tie: the lower position goes first whatever the sign.
	negZero := float32(math.Copysign(0, -1))
	m, _ = Unstructured([]float32{0, negZero, 1}, 1, 3, 0.34)
	if m.Keep(0, 0) || !m.Keep(0, 1) {
		t.Fatalf("+0 at position 0 must be pruned before −0 at position 1")
	}
}

func TestUnstructuredErrors(t *testing.T) {
	s := []float32{1, 2, 3, 4}
	for _, sp := range []float64{-0.1, 1, 1.5, math.NaN(), math.Inf(1)} {
		if _, err := Unstructured(s, 2, 2, sp); err == nil || !strings.Contains(err.Error(), "sparsity") {
			t.Errorf("sparsity %v: err = %v, want a sparsity error", sp, err)
		}
		if _, err := UnstructuredByRow(s, 2, 2, sp); err == nil {
			t.Errorf("by row, sparsity %v: no error", sp)
		}
	}
	if _, err := Unstructured(s, 3, 2, 0.5); err == nil {
		t.Error("shape mismatch: no error")
	}
	nan := []float32{1, 2, float32(math.NaN()), 4}
	for _, sp := range []float64{0, 0.5} {
		_, err := Unstructured(nan, 2, 2, sp)
		if err == nil || !strings.Contains(err.Error(), "NaN score at row 1, column 0") {
			t.Errorf("p=%v: NaN err = %v", sp, err)
		}
	}
	if _, err := UnstructuredByRow(nan, 2, 2, 0.5); err == nil {
		t.Error("by row: NaN accepted")
	}
	if _, err := NM(nan, 2, 2, 1, 2); err == nil {
		t.Error("NM: NaN accepted")
	}
}

func TestUnstructuredByRowMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for kind, gen := range maskScoreKinds {
		for _, sh := range maskShapes {
			out, in := sh[0], sh[1]
			scores := gen(r, out*in)
			for _, sp := range maskSparsities {
				got, err := UnstructuredByRow(scores, out, in, sp)
				if err != nil {
					t.Fatal(err)
				}
				quotas := rowQuotasRef(out, in, sp)
				var pruned []int
				for i := 0; i < out; i++ {
					for _, c := range maskRefLowest(scores[i*in:(i+1)*in], quotas[i]) {
						pruned = append(pruned, i*in+c)
					}
				}
				if !got.Equal(maskFromPruned(out, in, pruned)) {
					t.Fatalf("%s %dx%d p=%v: differs from reference", kind, out, in, sp)
				}
				for i := 0; i < out; i++ {
					kept := 0
					for j := 0; j < in; j++ {
						if got.Keep(i, j) {
							kept++
						}
					}
					if kept != in-quotas[i] {
						t.Fatalf("%s %dx%d p=%v row %d: kept %d, want %d", kind, out, in, sp, i, kept, in-quotas[i])
					}
				}
			}
		}
	}
}

func TestSelectSmallestAdversarial(t *testing.T) {
	// Orders that defeat naive pivots; the result must still be exact.
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{1, 2, 17, 100, 1000, 5000} {
		orders := map[string][]uint64{}
		asc, desc, organ, saw := make([]uint64, n), make([]uint64, n), make([]uint64, n), make([]uint64, n)
		for i := 0; i < n; i++ {
			asc[i], desc[i] = uint64(i), uint64(n-i)
			organ[i] = uint64(min(i, n-1-i))<<32 | uint64(i)
			saw[i] = uint64(i%7)<<32 | uint64(i)
		}
		orders["asc"], orders["desc"], orders["organ"], orders["saw"] = asc, desc, organ, saw
		orders["random"] = maskPermU64(r, n)
		for name, o := range orders {
			for _, k := range []int{0, 1, n / 3, n / 2, n - 1, n} {
				a := slices.Clone(o)
				selectSmallestU64(a, k)
				s := slices.Clone(o)
				slices.Sort(s)
				got := slices.Clone(a[:k])
				slices.Sort(got)
				if !slices.Equal(got, s[:k]) {
					t.Fatalf("%s n=%d k=%d: wrong k smallest", name, n, k)
				}
			}
		}
	}
}

func maskPermU64(r *rand.Rand, n int) []uint64 {
	a := make([]uint64, n)
	for i, p := range r.Perm(n) {
		a[i] = uint64(p)
	}
	return a
}

func TestNMMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	patterns := [][2]int{{2, 4}, {1, 4}, {3, 4}, {4, 8}, {1, 2}, {5, 32}, {7, 64}}
	for kind, gen := range maskScoreKinds {
		for _, nm := range patterns {
			n, m := nm[0], nm[1]
			out, in := 3, 2*m
			scores := gen(r, out*in)
			got, err := NM(scores, out, in, n, m)
			if err != nil {
				t.Fatal(err)
			}
			var pruned []int
			for g := 0; g < out*in; g += m {
				for _, c := range maskRefLowest(scores[g:g+m], m-n) {
					pruned = append(pruned, g+c)
				}
			}
			if !got.Equal(maskFromPruned(out, in, pruned)) {
				t.Fatalf("%s %d:%d: differs from reference", kind, n, m)
			}
			for g := 0; g < out*in; g += m {
				kept := 0
				for f := g; f < g+m; f++ {
					if got.Keep(f/in, f%in) {
						kept++
					}
				}
				if kept != n {
					t.Fatalf("%s %d:%d group at %d keeps %d", kind, n, m, g, kept)
				}
			}
		}
	}
}

func TestNMTiesAndErrors(t *testing.T) {
	// 2:4 on equal scores keeps the last two of every group.
	m, err := NM(make([]float32, 8), 1, 8, 2, 4)
	if err != nil {
		t.Fatal(err)
	}
	for j, want := range []bool{false, false, true, true, false, false, true, true} {
		if m.Keep(0, j) != want {
			t.Fatalf("column %d keep=%v, want %v", j, m.Keep(0, j), want)
		}
	}
	_, err = NM(make([]float32, 10), 2, 5, 2, 4)
	if !errors.Is(err, ErrNotDivisible) {
		t.Fatalf("in=5, M=4: err = %v, want ErrNotDivisible", err)
	}
	for _, nm := range [][2]int{{0, 4}, {4, 4}, {5, 4}, {1, 1}, {-1, 2}} {
		_, err := NM(make([]float32, 8), 1, 8, nm[0], nm[1])
		if err == nil || errors.Is(err, ErrNotDivisible) {
			t.Errorf("%d:%d: err = %v, want a pattern error", nm[0], nm[1], err)
		}
	}
}

func TestMasksRejectBadShapes(t *testing.T) {
	for name, f := range map[string]func() (*Mask, error){
		"unstructured": func() (*Mask, error) { return Unstructured(make([]float32, 5), 2, 3, 0.5) },
		"byrow":        func() (*Mask, error) { return UnstructuredByRow(make([]float32, 5), 2, 3, 0.5) },
		"nm":           func() (*Mask, error) { return NM(make([]float32, 5), 2, 4, 2, 4) },
		"negative":     func() (*Mask, error) { return Unstructured(nil, -1, 0, 0.5) },
	} {
		if _, err := f(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// Empty matrices are fine and empty.
	m, err := Unstructured(nil, 0, 5, 0.5)
	if err != nil || m.Kept() != 0 {
		t.Fatalf("empty: %v, %v", m, err)
	}
}

func ExampleNM() {
	scores := []float32{0.1, 0.9, 0.5, 0.3, 4, 3, 2, 1}
	m, _ := NM(scores, 1, 8, 2, 4)
	for j := 0; j < 8; j++ {
		fmt.Print(map[bool]int{false: 0, true: 1}[m.Keep(0, j)])
	}
	fmt.Println()
	// Output: 01101100
}

// rowQuotasRef is the largest-remainder (Hamilton) apportionment of the
// matrix's pruned count over rows weighted by their widths, written out
// generally: exact shares as fractions total·in/(out·in), floors, then the
// leftover to the largest remainders, ties to the lower row.
func rowQuotasRef(out, in int, sp float64) []int {
	total := PruneCount(out*in, sp)
	n := out * in
	q := make([]int, out)
	type rem struct{ r, row int }
	var rs []rem
	left := total
	for i := range out {
		q[i] = total * in / n
		rs = append(rs, rem{total * in % n, i})
		left -= q[i]
	}
	sort.SliceStable(rs, func(a, b int) bool { return rs[a].r > rs[b].r })
	for _, x := range rs[:left] {
		q[x.row]++
	}
	return q
}

func TestRowQuotasFairCount(t *testing.T) {
	for _, sh := range maskShapes {
		for _, sp := range maskSparsities {
			q := RowQuotas(sh[0], sh[1], sp)
			sum := 0
			for i, k := range q {
				sum += k
				if k < 0 || k > sh[1] {
					t.Fatalf("%v p=%v row %d: quota %d", sh, sp, i, k)
				}
			}
			if want := PruneCount(sh[0]*sh[1], sp); sum != want {
				t.Fatalf("%v p=%v: rows prune %d, the matrix count is %d", sh, sp, sum, want)
			}
		}
	}
	// The issue's case: 64 inputs at 70% prune 45 of 64 per row when every
	// row is rounded on its own (70.3%); a 64×64 matrix must lose exactly
	// PruneCount(4096, 0.7) = 2867 = 51 rows of 45 and 13 rows of 44.
	q := RowQuotas(64, 64, 0.7)
	for i, k := range q {
		want := 44
		if i < 2867-64*44 {
			want = 45
		}
		if k != want {
			t.Fatalf("row %d: quota %d, want %d", i, k, want)
		}
	}
}
