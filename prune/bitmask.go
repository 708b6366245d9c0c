package prune

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// Mask is the keep-mask of one out×in matrix: bit k of the packed words
// (k = i*In+j, least significant bit first) is set when element (i, j) is
// KEPT. Bits beyond Out*In are always zero, so Kept and Equal can work on
// whole words.
type Mask struct {
	Out, In int
	Bits    []uint64
}

// NewMask returns an out×in mask with every element PRUNED (all bits clear);
// Fill(true) makes it dense.
func NewMask(out, in int) *Mask {
	n, err := maskSize(out, in)
	if err != nil {
		panic("prune: NewMask: " + err.Error())
	}
	return &Mask{Out: out, In: in, Bits: make([]uint64, maskWords(n))}
}

// maskSize validates a shape and returns its element count.
func maskSize(out, in int) (int, error) {
	if out < 0 || in < 0 {
		return 0, fmt.Errorf("negative shape %d×%d", out, in)
	}
	if in > 0 && out > math.MaxInt/in {
		return 0, fmt.Errorf("shape %d×%d overflows", out, in)
	}
	return out * in, nil
}

func maskWords(n int) int { return (n + 63) / 64 }

// Keep reports whether element (i, j) is kept.
func (m *Mask) Keep(i, j int) bool {
	k := m.flat(i, j)
	return m.Bits[k>>6]&(1<<(k&63)) != 0
}

// Set marks element (i, j) kept or pruned.
func (m *Mask) Set(i, j int, keep bool) {
	k := m.flat(i, j)
	if keep {
		m.Bits[k>>6] |= 1 << (k & 63)
	} else {
		m.Bits[k>>6] &^= 1 << (k & 63)
	}
}

func (m *Mask) flat(i, j int) int {
	if uint(i) >= uint(m.Out) || uint(j) >= uint(m.In) {
		panic(fmt.Sprintf("prune: mask index (%d, %d) out of %d×%d", i, j, m.Out, m.In))
	}
	return i*m.In + j
}

// Fill keeps (keep = true) or prunes every element.
func (m *Mask) Fill(keep bool) {
	if !keep {
		clear(m.Bits)
		return
	}
	for w := range m.Bits {
		m.Bits[w] = ^uint64(0)
	}
	m.clearTail()
}

// clearTail zeroes the bits past Out*In so whole-word operations stay exact.
func (m *Mask) clearTail() {
	if r := (m.Out * m.In) & 63; r != 0 && len(m.Bits) > 0 {
		m.Bits[len(m.Bits)-1] &= 1<<r - 1
	}
}

// MaskFromKeep returns the out×in mask of keep (row-major, true = kept),
// the form SparseGPT reports its selection in.
func MaskFromKeep(out, in int, keep []bool) *Mask {
	m := NewMask(out, in)
	if len(keep) != out*in {
		panic(fmt.Sprintf("prune: MaskFromKeep: %d entries for a %d×%d mask", len(keep), out, in))
	}
	for k, v := range keep {
		if v {
			m.Bits[k>>6] |= 1 << (k & 63)
		}
	}
	return m
}

// keepInto writes the mask into keep (row-major, true = kept), which must
// hold Out*In entries.
func (m *Mask) keepInto(keep []bool) {
	for k := range keep[:m.Out*m.In] {
		keep[k] = m.Bits[k>>6]&(1<<(k&63)) != 0
	}
}

// Kept returns the number of kept elements.
func (m *Mask) Kept() int {
	n := 0
	for _, w := range m.Bits {
		n += bits.OnesCount64(w)
	}
	return n
}

// Sparsity returns the pruned fraction, 0 for an empty matrix.
func (m *Mask) Sparsity() float64 {
	n := m.Out * m.In
	if n == 0 {
		return 0
	}
	return 1 - float64(m.Kept())/float64(n)
}

// Apply zeroes the pruned elements of w (row-major out×in). It panics if w
// has the wrong length.
func (m *Mask) Apply(w []float32) {
	n := m.Out * m.In
	if len(w) != n {
		panic(fmt.Sprintf("prune: Mask.Apply: %d weights for a %d×%d mask", len(w), m.Out, m.In))
	}
	for wi, word := range m.Bits {
		if word == ^uint64(0) {
			continue // the common all-kept word costs one compare
		}
		base := wi * 64
		seg := w[base:min(base+64, n)]
		for b := range seg {
			if word&(1<<b) == 0 {
				seg[b] = 0
			}
		}
	}
}

// Equal reports whether two masks have the same shape and bits.
func (m *Mask) Equal(o *Mask) bool {
	if m.Out != o.Out || m.In != o.In || len(m.Bits) != len(o.Bits) {
		return false
	}
	for i, w := range m.Bits {
		if w != o.Bits[i] {
			return false
		}
	}
	return true
}

// maskMagic starts every marshalled mask; the digit is the format version.
const maskMagic = "UPM1"

// maskHeader is magic + out + in (uint64 little-endian each).
const maskHeader = 4 + 8 + 8

// MarshalBinary encodes the mask as "UPM1", out and in as little-endian
// uint64, then the packed words as little-endian uint64. The word stream is
// byte-for-byte the LSB-first bit packing of the row-major mask.
func (m *Mask) MarshalBinary() ([]byte, error) {
	n, err := maskSize(m.Out, m.In)
	if err != nil {
		return nil, fmt.Errorf("prune: marshal mask: %w", err)
	}
	if len(m.Bits) != maskWords(n) {
		return nil, fmt.Errorf("prune: marshal mask: %d words for %d×%d", len(m.Bits), m.Out, m.In)
	}
	b := make([]byte, maskHeader+8*len(m.Bits))
	copy(b, maskMagic)
	binary.LittleEndian.PutUint64(b[4:], uint64(m.Out))
	binary.LittleEndian.PutUint64(b[12:], uint64(m.In))
	for i, w := range m.Bits {
		binary.LittleEndian.PutUint64(b[maskHeader+8*i:], w)
	}
	return b, nil
}

// UnmarshalBinary decodes MarshalBinary's format, checking the magic, the
// shape, the exact length and that no bit is set past Out*In.
func (m *Mask) UnmarshalBinary(b []byte) error {
	if len(b) < maskHeader || string(b[:4]) != maskMagic {
		return errors.New("prune: unmarshal mask: not a mask (bad magic or short header)")
	}
	out64 := binary.LittleEndian.Uint64(b[4:])
	in64 := binary.LittleEndian.Uint64(b[12:])
	if out64 > math.MaxInt32 || in64 > math.MaxInt32 {
		return fmt.Errorf("prune: unmarshal mask: implausible shape %d×%d", out64, in64)
	}
	out, in := int(out64), int(in64)
	n, err := maskSize(out, in)
	if err != nil {
		return fmt.Errorf("prune: unmarshal mask: %w", err)
	}
	words := maskWords(n)
	if want := maskHeader + 8*uint64(words); uint64(len(b)) != want {
		return fmt.Errorf("prune: unmarshal mask: %d bytes, %d×%d needs %d", len(b), out, in, want)
	}
	bitsOut := make([]uint64, words)
	for i := range bitsOut {
		bitsOut[i] = binary.LittleEndian.Uint64(b[maskHeader+8*i:])
	}
	nm := Mask{Out: out, In: in, Bits: bitsOut}
	if words > 0 {
		last := bitsOut[words-1]
		nm.clearTail()
		if bitsOut[words-1] != last {
			return errors.New("prune: unmarshal mask: bits set past the end of the matrix")
		}
	}
	*m = nm
	return nil
}
