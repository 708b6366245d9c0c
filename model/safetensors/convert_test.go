package safetensors

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// The references below are deliberately naive: they compute values in
// float64 from the textbook definition of each format and round by
// comparing distances, sharing no bit tricks with the code under test.

// refDecode returns the value of a binary float with the given exponent and
// mantissa widths, in float64 (NaN for NaN, which callers treat apart).
func refDecode(bits uint32, expBits, mantBits uint) float64 {
	sign := 1.0
	if bits>>(expBits+mantBits)&1 == 1 {
		sign = -1
	}
	e := int(bits >> mantBits & (1<<expBits - 1))
	m := float64(bits & (1<<mantBits - 1))
	bias := 1<<(expBits-1) - 1
	switch {
	case e == 1<<expBits-1 && m == 0:
		return sign * math.Inf(1)
	case e == 1<<expBits-1:
		return math.NaN()
	case e == 0:
		return sign * math.Ldexp(m, 1-bias-int(mantBits))
	}
	return sign * math.Ldexp(1+m/float64(uint(1)<<mantBits), e-bias)
}

func refBF16ToF32(h uint16) float64 { return refDecode(uint32(h), 8, 7) }
func refF16ToF32(h uint16) float64  { return refDecode(uint32(h), 5, 10) }

// checkWiden compares a widening conversion with its reference for all
// 65536 inputs: same bits for numbers, NaN for NaN.
func checkWiden(t *testing.T, name string, got func(uint16) float32, ref func(uint16) float64) {
	t.Helper()
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		g, want := got(h), ref(h)
		if math.IsNaN(want) {
			if !math.IsNaN(float64(g)) {
				t.Fatalf("%s(%#04x) = %v, want NaN", name, h, g)
			}
			continue
		}
		if math.Float32bits(g) != math.Float32bits(float32(want)) {
			t.Fatalf("%s(%#04x) = %v (%#08x), want %v", name, h, g, math.Float32bits(g), want)
		}
	}
}

func TestBF16ToF32Exhaustive(t *testing.T) { checkWiden(t, "BF16ToF32", BF16ToF32, refBF16ToF32) }
func TestF16ToF32Exhaustive(t *testing.T)  { checkWiden(t, "F16ToF32", F16ToF32, refF16ToF32) }

// nearestRef rounds |x| to the nearest entry of the ascending table vals
// (vals[i] is the value of bit pattern i), ties to the even pattern. The
// entry after the largest finite value stands for infinity: IEEE rounding
// overflows exactly when it would round to that next power of two.
func nearestRef(vals []float64, x float64) uint16 {
	i := sort.SearchFloat64s(vals, x) // first index with vals[i] >= x
	if i == len(vals) {
		return uint16(len(vals) - 1) // beyond the infinity stand-in
	}
	if vals[i] == x || i == 0 {
		return uint16(i)
	}
	lo, hi := x-vals[i-1], vals[i]-x
	switch {
	case lo < hi:
		return uint16(i - 1)
	case hi < lo:
		return uint16(i)
	case i%2 == 0:
		return uint16(i)
	}
	return uint16(i - 1)
}

// positiveTable lists the values of the non-negative finite patterns of a
// 16-bit format, then the next power of two standing for +Inf (whose
// pattern follows the largest finite one).
func positiveTable(ref func(uint16) float64, inf uint16) []float64 {
	vals := make([]float64, inf+1)
	for h := range inf {
		vals[h] = ref(h)
	}
	vals[inf] = math.Ldexp(1, math.Ilogb(ref(inf-1))+1)
	return vals
}

// refNarrow rounds x with the table, restoring the sign; NaN maps to a NaN.
func refNarrow(vals []float64, x float32) (uint16, bool) {
	if math.IsNaN(float64(x)) {
		return 0, false
	}
	h := nearestRef(vals, math.Abs(float64(x)))
	if math.Signbit(float64(x)) {
		h |= 0x8000
	}
	return h, true
}

// narrowInputs are float32 values that probe every rounding decision: each
// representable 16-bit value, the exact midpoints to its neighbour and the
// float32 values just either side of those midpoints, plus edge cases and
// random bit patterns.
func narrowInputs(ref func(uint16) float64, inf uint16) []float32 {
	var in []float32
	for h := range inf {
		v := ref(h)
		next := math.Ldexp(1, math.Ilogb(ref(inf-1))+1)
		if h+1 < inf {
			next = ref(h + 1)
		}
		mid := float32((v + next) / 2) // exact: one more bit than the format has
		in = append(in, float32(v), mid,
			math.Nextafter32(mid, 0), math.Nextafter32(mid, float32(math.Inf(1))))
	}
	edges := []float32{0, float32(math.Copysign(0, -1)), math.MaxFloat32, math.SmallestNonzeroFloat32,
		float32(math.Inf(1)), float32(math.Inf(-1)), 65504, 65519.996, 65520, 65536, 1e10,
		0x1p-24, 0x1p-25, 0x1.000002p-25, 0x1.8p-25, 0x1p-26, 0x1p-14, 0x1.ffcp-15, 1e-30,
		math.Float32frombits(0x7f800001), math.Float32frombits(0x7fc00000), math.Float32frombits(0xffffffff),
		math.Float32frombits(0x7f801000), math.Float32frombits(0x7f802000)}
	in = append(in, edges...)
	r := rand.New(rand.NewPCG(1, 2))
	for range 1 << 20 {
		in = append(in, math.Float32frombits(r.Uint32()))
	}
	for i, n := 0, len(in); i < n; i++ {
		in = append(in, -in[i])
	}
	return in
}

// checkNarrow compares a narrowing conversion with the table reference.
func checkNarrow(t *testing.T, name string, got func(float32) uint16, ref func(uint16) float64, inf uint16) {
	t.Helper()
	vals := positiveTable(ref, inf)
	for _, x := range narrowInputs(ref, inf) {
		g := got(x)
		want, ok := refNarrow(vals, x)
		if !ok {
			if !math.IsNaN(ref(g)) {
				t.Fatalf("%s(NaN %#08x) = %#04x, not a NaN", name, math.Float32bits(x), g)
			}
			continue
		}
		if g != want {
			t.Fatalf("%s(%v = %#08x) = %#04x, want %#04x", name, x, math.Float32bits(x), g, want)
		}
	}
}

func TestF32ToBF16(t *testing.T) { checkNarrow(t, "F32ToBF16", F32ToBF16, refBF16ToF32, 0x7f80) }
func TestF32ToF16(t *testing.T)  { checkNarrow(t, "F32ToF16", F32ToF16, refF16ToF32, 0x7c00) }

// TestRoundTrip16 checks that narrowing a widened value gives it back.
func TestRoundTrip16(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		if f := BF16ToF32(h); !math.IsNaN(float64(f)) && F32ToBF16(f) != h {
			t.Fatalf("BF16 %#04x -> %v -> %#04x", h, f, F32ToBF16(f))
		}
		if f := F16ToF32(h); !math.IsNaN(float64(f)) && F32ToF16(f) != h {
			t.Fatalf("F16 %#04x -> %v -> %#04x", h, f, F32ToF16(f))
		}
	}
}

func TestConversionsDoNotAllocate(t *testing.T) {
	src := make([]float32, 4096)
	buf := make([]byte, 8*len(src))
	for _, dt := range []DType{F32, F16, BF16, F64} {
		raw := buf[:len(src)*dt.Size()]
		allocs := testing.AllocsPerRun(10, func() {
			if err := EncodeFloat32(dt, src, raw); err != nil {
				t.Fatal(err)
			}
			if err := DecodeFloat32(dt, raw, src); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per conversion, want 0", dt, allocs)
		}
	}
}

func TestCodecErrors(t *testing.T) {
	if err := DecodeFloat32(I8, make([]byte, 4), make([]float32, 4)); err == nil {
		t.Error("DecodeFloat32(I8) succeeded")
	}
	if err := DecodeFloat32(F16, make([]byte, 3), make([]float32, 2)); err == nil {
		t.Error("DecodeFloat32 with a short source succeeded")
	}
	if err := EncodeFloat32(U8, make([]float32, 1), make([]byte, 1)); err == nil {
		t.Error("EncodeFloat32(U8) succeeded")
	}
	if err := EncodeFloat32(F32, make([]float32, 1), make([]byte, 5)); err == nil {
		t.Error("EncodeFloat32 with a wrong destination size succeeded")
	}
}
