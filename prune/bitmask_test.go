package prune

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

func TestMaskSetKeepKept(t *testing.T) {
	m := NewMask(3, 70) // 210 bits: a partial last word
	if m.Kept() != 0 || m.Sparsity() != 1 {
		t.Fatalf("new mask must prune everything: kept %d", m.Kept())
	}
	m.Set(0, 0, true)
	m.Set(2, 69, true)
	m.Set(1, 5, true)
	m.Set(1, 5, false)
	if !m.Keep(0, 0) || !m.Keep(2, 69) || m.Keep(1, 5) || m.Kept() != 2 {
		t.Fatalf("set/keep broken: kept %d", m.Kept())
	}
	m.Fill(true)
	if m.Kept() != 210 || m.Sparsity() != 0 {
		t.Fatalf("Fill(true): kept %d", m.Kept())
	}
	if m.Bits[len(m.Bits)-1]>>(210%64) != 0 {
		t.Fatal("Fill set bits past the end")
	}
	m.Fill(false)
	if m.Kept() != 0 {
		t.Fatal("Fill(false) kept something")
	}
	if NewMask(0, 5).Sparsity() != 0 {
		t.Fatal("empty mask sparsity must be 0")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("out-of-range index did not panic")
		}
	}()
	m.Keep(3, 0)
}

func TestMaskBitLayout(t *testing.T) {
	// Bit k = i*In+j, LSB first: the layout maskfile relies on.
	m := NewMask(2, 40)
	m.Set(1, 30, true) // k = 70 → word 1, bit 6
	if m.Bits[0] != 0 || m.Bits[1] != 1<<6 {
		t.Fatalf("bits %x", m.Bits)
	}
}

// TestMaskFromKeepRoundTrip: MaskFromKeep and keepInto convert between the
// packed mask and SparseGPT's []bool, element (i, j) to entry i*In+j.
func TestMaskFromKeepRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	keep := make([]bool, 3*70) // a partial last word
	for k := range keep {
		keep[k] = r.IntN(2) == 1
	}
	m := MaskFromKeep(3, 70, keep)
	for i := range 3 {
		for j := range 70 {
			if m.Keep(i, j) != keep[i*70+j] {
				t.Fatalf("(%d, %d): mask %v, keep %v", i, j, m.Keep(i, j), keep[i*70+j])
			}
		}
	}
	back := make([]bool, len(keep))
	m.keepInto(back)
	for k := range keep {
		if back[k] != keep[k] {
			t.Fatalf("entry %d: %v back, %v given", k, back[k], keep[k])
		}
	}
}

func TestMaskApply(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	out, in := 5, 77
	m := NewMask(out, in)
	w := make([]float32, out*in)
	for k := range w {
		w[k] = float32(k + 1)
		if r.IntN(3) > 0 {
			m.Set(k/in, k%in, true)
		}
	}
	m.Bits[0] = ^uint64(0) // exercise the all-kept fast path
	m.Apply(w)
	for k, v := range w {
		kept := m.Keep(k/in, k%in)
		if kept && v != float32(k+1) || !kept && v != 0 {
			t.Fatalf("element %d = %v, kept %v", k, v, kept)
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("wrong length did not panic")
		}
	}()
	m.Apply(w[:3])
}

func TestMaskMarshalRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(33, 34))
	for _, sh := range [][2]int{{0, 0}, {1, 1}, {3, 70}, {64, 64}, {7, 9}} {
		m := NewMask(sh[0], sh[1])
		for k := 0; k < sh[0]*sh[1]; k++ {
			m.Set(k/sh[1], k%sh[1], r.IntN(2) == 0)
		}
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Mask
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("%v: %v", sh, err)
		}
		if !got.Equal(m) {
			t.Fatalf("%v: round trip differs", sh)
		}
	}
}

func TestMaskUnmarshalRejects(t *testing.T) {
	m := NewMask(3, 70)
	m.Fill(true)
	good, _ := m.MarshalBinary()
	tail := append([]byte(nil), good...)
	tail[len(tail)-1] |= 0x80 // a bit past element 210
	huge := append([]byte(nil), good...)
	binary.LittleEndian.PutUint64(huge[4:], 1<<40)
	for name, b := range map[string][]byte{
		"empty":     nil,
		"magic":     append([]byte("XXXX"), good[4:]...),
		"short":     good[:len(good)-1],
		"long":      append(append([]byte(nil), good...), 0),
		"tail bits": tail,
		"huge":      huge,
	} {
		var got Mask
		if err := got.UnmarshalBinary(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestMaskEqual(t *testing.T) {
	a, b := NewMask(2, 3), NewMask(2, 3)
	if !a.Equal(b) {
		t.Fatal("equal masks differ")
	}
	b.Set(1, 2, true)
	if a.Equal(b) {
		t.Fatal("different bits compare equal")
	}
	if NewMask(3, 2).Equal(NewMask(2, 3)) {
		t.Fatal("different shapes compare equal")
	}
}
