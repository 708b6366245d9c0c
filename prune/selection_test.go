package prune

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// selRefKth is the reference k-th smallest |value| by sorting the keys of
// the concatenation.
func selRefKth(vals []float32, k uint64) (key uint32, below, equal uint64) {
	keys := make([]uint32, len(vals))
	for i, v := range vals {
		keys[i] = Key(v)
	}
	slices.Sort(keys)
	key = keys[k-1]
	for _, x := range keys {
		switch {
		case x < key:
			below++
		case x == key:
			equal++
		}
	}
	return key, below, equal
}

// selSplit cuts vals (kept in order) into a random number of partitions,
// each cut into random matrices with random shapes; empty partitions and
// empty matrices occur. The concatenation order is preserved, which is the
// (partition, matrix, position) order.
func selSplit(r *rand.Rand, vals []float32) []SlicePartition {
	np := 1 + r.IntN(6)
	cuts := selCuts(r, len(vals), np)
	parts := make([]SlicePartition, np)
	for p := range parts {
		chunk := vals[cuts[p]:cuts[p+1]]
		nm := 1 + r.IntN(4)
		mc := selCuts(r, len(chunk), nm)
		for m := 0; m < nm; m++ {
			v := chunk[mc[m]:mc[m+1]]
			out := 1
			for d := 1 + r.IntN(4); d > 1; d-- {
				if len(v)%d == 0 {
					out = d
					break
				}
			}
			in := len(v) / out
			if len(v) == 0 {
				out, in = 0, 3
			}
			parts[p].Values = append(parts[p].Values, v)
			parts[p].Shapes = append(parts[p].Shapes, [2]int{out, in})
		}
	}
	return parts
}

// selCuts returns n+1 non-decreasing cut points from 0 to total.
func selCuts(r *rand.Rand, total, n int) []int {
	c := make([]int, n+1)
	for i := 1; i < n; i++ {
		c[i] = r.IntN(total + 1)
	}
	c[n] = total
	slices.Sort(c)
	return c
}

func selAsParts(sp []SlicePartition) []Partition {
	parts := make([]Partition, len(sp))
	for i := range sp {
		parts[i] = sp[i]
	}
	return parts
}

// selValueSets are the value lists the selection tests run on.
func selValueSets(r *rand.Rand) map[string][]float32 {
	sets := map[string][]float32{
		"single":   {-2.5},
		"two-zero": {0, float32(math.Copysign(0, -1))},
	}
	for kind, gen := range maskScoreKinds {
		sets[kind] = gen(r, 1+r.IntN(3000))
	}
	// Keys that share their high half but not their low half, and vice versa
	// (high halves up to +Inf's, never a NaN).
	sets["low-half-only"] = maskFill(2000, func(int) float32 { return math.Float32frombits(0x40000000 | uint32(r.IntN(1<<16))) })
	sets["high-half-only"] = maskFill(2000, func(int) float32 { return math.Float32frombits(uint32(r.IntN(0x7f81)) << 16) })
	return sets
}

func TestSelectKthMatchesSortForManyPartitionings(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for name, vals := range selValueSets(r) {
		n := uint64(len(vals))
		ranks := []uint64{1, n, (n + 1) / 2, 1 + n/3, 1 + uint64(r.IntN(len(vals)))}
		for _, k := range ranks {
			wantKey, wantBelow, wantEqual := selRefKth(vals, k)
			for trial := 0; trial < 8; trial++ {
				sp := selSplit(r, vals)
				sel, err := SelectKth(selAsParts(sp), k)
				if err != nil {
					t.Fatalf("%s k=%d: %v", name, k, err)
				}
				if sel.Key != wantKey || sel.Below != wantBelow || sel.Equal != wantEqual {
					t.Fatalf("%s k=%d %d parts: got key %#x below %d equal %d, want %#x %d %d",
						name, k, len(sp), sel.Key, sel.Below, sel.Equal, wantKey, wantBelow, wantEqual)
				}
				if sel.Value != math.Float32frombits(wantKey) {
					t.Fatalf("%s: value %v for key %#x", name, sel.Value, wantKey)
				}
				if len(sel.EqualPer) != len(sp) {
					t.Fatalf("%s: %d EqualPer for %d partitions", name, len(sel.EqualPer), len(sp))
				}
				for p, e := range sel.EqualPer {
					var want uint64
					for _, m := range sp[p].Values {
						for _, v := range m {
							if Key(v) == wantKey {
								want++
							}
						}
					}
					if e != want {
						t.Fatalf("%s: EqualPer[%d] = %d, want %d", name, p, e, want)
					}
				}
			}
		}
	}
}

func TestSelectKthRankErrors(t *testing.T) {
	p := selAsParts([]SlicePartition{{Values: [][]float32{{1, 2, 3}}}})
	for _, k := range []uint64{0, 4} {
		if _, err := SelectKth(p, k); err == nil || !strings.Contains(err.Error(), "rank") {
			t.Errorf("k=%d: err = %v", k, err)
		}
	}
	if _, err := SelectKth(nil, 1); err == nil {
		t.Error("no partitions: no error")
	}
	if _, err := SelectKth(selAsParts([]SlicePartition{{}, {}}), 1); err == nil {
		t.Error("empty partitions: no error")
	}
}

func TestSelectionRejectsNaN(t *testing.T) {
	nan := float32(math.NaN())
	sp := []SlicePartition{
		{Values: [][]float32{{1, 2}}},
		{Values: [][]float32{{3}, {4, 5, 6, nan}}, Shapes: [][2]int{{1, 1}, {2, 2}}, Names: []string{"l3.q", "l3.k"}},
	}
	_, err := SelectKth(selAsParts(sp), 2)
	if err == nil || !strings.Contains(err.Error(), "partition 1") || !strings.Contains(err.Error(), "NaN in l3.k at row 1, column 1") {
		t.Fatalf("err = %v", err)
	}
	if _, _, err := Threshold(selAsParts(sp), 0.5); err == nil {
		t.Error("Threshold accepted NaN")
	}
	if _, err := KeepLargest(selAsParts(sp), 2); err == nil {
		t.Error("KeepLargest accepted NaN")
	}
	if _, err := sp[1].MaskWith(Allocation{PrunedEqual: []uint64{0, 0}}, 1); err == nil {
		t.Error("MaskWith accepted NaN")
	}
	if err := CheckFinite([]float32{1, float32(math.Inf(-1))}); err == nil {
		t.Error("CheckFinite accepted -Inf")
	}
	if err := CheckFinite([]float32{1, nan}); err == nil || !strings.Contains(err.Error(), "index 1") {
		t.Errorf("CheckFinite: %v", err)
	}
	if err := CheckFinite([]float32{0, -1, math.MaxFloat32, math.SmallestNonzeroFloat32}); err != nil {
		t.Error(err)
	}
}

func TestKeyOrder(t *testing.T) {
	negZero := float32(math.Copysign(0, -1))
	if Key(negZero) != 0 || Key(0) != 0 {
		t.Fatal("±0 must have key 0")
	}
	ladder := []float32{0, math.SmallestNonzeroFloat32, 1e-40, 1.1754944e-38, 1e-30, 0.5, 1, 3, math.MaxFloat32, float32(math.Inf(1))}
	for i := 1; i < len(ladder); i++ {
		if Key(ladder[i-1]) >= Key(ladder[i]) || Key(-ladder[i]) != Key(ladder[i]) {
			t.Fatalf("key order broken at %v", ladder[i])
		}
	}
}

// selFlaky returns a different histogram in round 1 than round 0 implies,
// as a shard whose values changed between rounds would.
type selFlaky struct{ SlicePartition }

func (f selFlaky) Histogram(q HistQuery, dst []uint64) error {
	err := f.SlicePartition.Histogram(q, dst)
	if q.Round == 1 {
		dst[0]++
	}
	return err
}

func TestSelectKthDetectsChangedPartitions(t *testing.T) {
	p := []Partition{selFlaky{SlicePartition{Values: [][]float32{{0, 1, 2}}}}}
	if _, err := SelectKth(p, 1); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("err = %v", err)
	}
}

func TestHistQueryValidation(t *testing.T) {
	sp := SlicePartition{Values: [][]float32{{1}}}
	dst := make([]uint64, HistBuckets)
	for _, q := range []HistQuery{{Round: 2}, {Round: -1}, {Round: 1, Prefix: 1 << 16}} {
		if err := sp.Histogram(q, dst); err == nil {
			t.Errorf("%+v accepted", q)
		}
	}
	if err := sp.Histogram(HistQuery{}, make([]uint64, 10)); err == nil {
		t.Error("short buffer accepted")
	}
	if _, err := sp.CountEqual(0x7fc00000); !errors.Is(err, errNaNKey) {
		t.Errorf("NaN key: %v", err)
	}
}

func TestThreshold(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for name, vals := range selValueSets(r) {
		n := len(vals)
		for _, f := range []float64{0, 0.4 / float64(n), 0.001, 0.25, 0.5, 0.999, 1} {
			k := uint64(math.Round(f * float64(n)))
			sp := selSplit(r, vals)
			tau, sel, err := Threshold(selAsParts(sp), f)
			if err != nil {
				t.Fatalf("%s f=%v: %v", name, f, err)
			}
			if k == 0 {
				zeros := uint64(0)
				for _, v := range vals {
					if v == 0 {
						zeros++
					}
				}
				if tau != 0 || sel.Below != 0 || sel.Equal != zeros {
					t.Fatalf("%s f=%v (k=0): tau %v sel %+v, want 0 with %d zeros", name, f, tau, sel, zeros)
				}
				continue
			}
			key, below, equal := selRefKth(vals, k)
			if tau != math.Float32frombits(key) || sel.Below != below || sel.Equal != equal {
				t.Fatalf("%s f=%v: tau %v, want %v", name, f, tau, math.Float32frombits(key))
			}
			// The budget property: fewer than k values below τ, at least k at or below.
			if sel.Below >= k || sel.Below+sel.Equal < k {
				t.Fatalf("%s f=%v: below %d equal %d for k %d", name, f, sel.Below, sel.Equal, k)
			}
		}
	}
	for _, f := range []float64{-0.1, 1.1, math.NaN()} {
		if _, _, err := Threshold(nil, f); err == nil {
			t.Errorf("fraction %v accepted", f)
		}
	}
	if tau, _, err := Threshold(nil, 0.5); err != nil || tau != 0 {
		t.Errorf("no values: tau %v err %v, want 0, nil", tau, err)
	}
}

// selRefKeep is the reference global allocation: sort all positions of the
// concatenation by (key, position), prune the first n−keep.
func selRefKeep(vals []float32, keep int) []bool {
	pos := make([]int, len(vals))
	for i := range pos {
		pos[i] = i
	}
	slices.SortFunc(pos, func(a, b int) int {
		ka, kb := Key(vals[a]), Key(vals[b])
		switch {
		case ka < kb:
			return -1
		case ka > kb:
			return 1
		}
		return a - b
	})
	kept := make([]bool, len(vals))
	for _, p := range pos[len(vals)-keep:] {
		kept[p] = true
	}
	return kept
}

func TestKeepLargestMatchesSortForManyPartitionings(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for name, vals := range selValueSets(r) {
		n := len(vals)
		for _, keep := range []int{0, 1, n / 4, n / 2, n - 1, n} {
			want := selRefKeep(vals, keep)
			for trial := 0; trial < 6; trial++ {
				sp := selSplit(r, vals)
				a, err := KeepLargest(selAsParts(sp), uint64(keep))
				if err != nil {
					t.Fatalf("%s keep=%d: %v", name, keep, err)
				}
				if a.Keep != uint64(keep) || a.Prune != uint64(n-keep) {
					t.Fatalf("%s: keep/prune %d/%d", name, a.Keep, a.Prune)
				}
				var got []bool
				for p := range sp {
					masks, err := sp[p].MaskWith(a, p)
					if err != nil {
						t.Fatalf("%s keep=%d part %d: %v", name, keep, p, err)
					}
					for _, m := range masks {
						for k := 0; k < m.Out*m.In; k++ {
							got = append(got, m.Keep(k/m.In, k%m.In))
						}
					}
				}
				if !slices.Equal(got, want) {
					t.Fatalf("%s keep=%d with %d partitions: masks differ from the sorted reference", name, keep, len(sp))
				}
			}
		}
	}
}

func TestKeepLargestTiesFollowPartitionOrder(t *testing.T) {
	// Six equal |values| over three partitions; keeping 2 prunes the first 4
	// in (partition, position) order: both of partition 0 and both of
	// partition 1, so partition 2's survive.
	sp := []SlicePartition{
		{Values: [][]float32{{1, 1}}, Shapes: [][2]int{{1, 2}}},
		{Values: [][]float32{{1, -1}}, Shapes: [][2]int{{2, 1}}},
		{Values: [][]float32{{1, 1}}, Shapes: [][2]int{{1, 2}}},
	}
	a, err := KeepLargest(selAsParts(sp), 2)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.PrunedEqual, []uint64{2, 2, 0}) || a.Key != Key(1) {
		t.Fatalf("allocation %+v", a)
	}
	a, _ = KeepLargest(selAsParts(sp), 3)
	if !slices.Equal(a.PrunedEqual, []uint64{2, 1, 0}) {
		t.Fatalf("keep 3: %+v", a.PrunedEqual)
	}
	m, _ := sp[1].MaskWith(a, 1)
	if m[0].Keep(0, 0) || !m[0].Keep(1, 0) {
		t.Fatal("partition 1 must prune its first tied value only")
	}
}

func TestKeepLargestErrors(t *testing.T) {
	sp := []SlicePartition{{Values: [][]float32{{1, 2}}, Shapes: [][2]int{{1, 2}}}}
	if _, err := KeepLargest(selAsParts(sp), 3); err == nil {
		t.Error("keep > total accepted")
	}
	a, err := KeepLargest(selAsParts(sp), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sp[0].MaskWith(a, 1); err == nil {
		t.Error("partition index out of range accepted")
	}
	bad := SlicePartition{Values: sp[0].Values, Shapes: [][2]int{{3, 1}}}
	if _, err := bad.MaskWith(a, 0); err == nil {
		t.Error("wrong shape accepted")
	}
	changed := SlicePartition{Values: [][]float32{{5, 5}}, Shapes: [][2]int{{1, 2}}}
	if _, err := changed.MaskWith(Allocation{Key: Key(1), PrunedEqual: []uint64{1}}, 0); err == nil {
		t.Error("missing boundary values not reported")
	}
}

func TestSelectionWithManyPartitions(t *testing.T) {
	// Past selRetainMaxParts the per-partition counts come from CountEqual;
	// results must be the same as with few partitions.
	r := rand.New(rand.NewPCG(17, 18))
	vals := maskScoreKinds["few-levels"](r, 5000)
	n := len(vals)
	per := n / (selRetainMaxParts + 36)
	var sp []SlicePartition
	for lo := 0; lo < n; lo += per {
		v := vals[lo:min(lo+per, n)]
		sp = append(sp, SlicePartition{Values: [][]float32{v}, Shapes: [][2]int{{1, len(v)}}})
	}
	if len(sp) <= selRetainMaxParts {
		t.Fatalf("only %d partitions", len(sp))
	}
	for _, k := range []uint64{1, uint64(n) / 3, uint64(n)} {
		key, below, equal := selRefKth(vals, k)
		sel, err := SelectKth(selAsParts(sp), k)
		if err != nil || sel.Key != key || sel.Below != below || sel.Equal != equal || len(sel.EqualPer) != len(sp) {
			t.Fatalf("k=%d: %+v %v", k, sel, err)
		}
	}
	keep := n / 2
	a, err := KeepLargest(selAsParts(sp), uint64(keep))
	if err != nil {
		t.Fatal(err)
	}
	var got []bool
	for p := range sp {
		masks, err := sp[p].MaskWith(a, p)
		if err != nil {
			t.Fatal(err)
		}
		for k := 0; k < masks[0].In; k++ {
			got = append(got, masks[0].Keep(0, k))
		}
	}
	if !slices.Equal(got, selRefKeep(vals, keep)) {
		t.Fatal("many-partition allocation differs from the reference")
	}
	parts := selAsParts(sp)
	parts[3] = selMiscount{sp[3]}
	if _, err := SelectKth(parts, uint64(n)/2); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("miscounting partition: %v", err)
	}
}

// selMiscount answers CountEqual inconsistently with its histograms.
type selMiscount struct{ SlicePartition }

func (f selMiscount) CountEqual(key uint32) (uint64, error) {
	n, err := f.SlicePartition.CountEqual(key)
	return n + 1, err
}
