package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
)

// BF16ToF32 widens a bfloat16, which is exactly the top half of a float32.
func BF16ToF32(h uint16) float32 {
	return math.Float32frombits(uint32(h) << 16)
}

// F32ToBF16 rounds f to the nearest bfloat16, ties to even. Overflow rounds
// to ±Inf as IEEE rounding demands. A NaN stays a NaN: truncation alone
// could clear every remaining mantissa bit and turn it into an infinity, so
// the quiet bit is forced on.
func F32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x0040
	}
	// Adding 0x7fff rounds up anything above the halfway point; adding the
	// kept LSB as well breaks the exact tie towards the even result.
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// F16ToF32 widens an IEEE 754 binary16 exactly, including subnormals,
// infinities and NaNs (whose payload is kept).
func F16ToF32(h uint16) float32 {
	// Placed in float32 position, the exponent and mantissa read as the
	// right value scaled by 2^-112 (bias 127 instead of 15), subnormals
	// included, so one exact multiplication finishes the job without the
	// branches a normalisation loop would cost.
	em := uint32(h&0x7fff) << 13
	f := math.Float32frombits(em) * 0x1p112
	if em >= 0x0f800000 { // all-ones exponent: Inf or NaN
		f = math.Float32frombits(0x7f800000 | em)
	}
	return math.Float32frombits(math.Float32bits(f) | uint32(h&0x8000)<<16)
}

// F32ToF16 rounds f to the nearest IEEE 754 binary16, ties to even: values
// beyond the largest finite half (65504, rounding boundary 65520) become
// ±Inf, tiny values become subnormals or ±0, and a NaN stays a NaN.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	e := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if e == 0xff {
		if mant != 0 {
			// Keep the top payload bits but force the quiet bit, so the
			// NaN cannot collapse into an infinity.
			return sign | 0x7e00 | uint16(mant>>13)
		}
		return sign | 0x7c00
	}
	exp := e - 112 // exponent rebiased for binary16
	switch {
	case exp >= 0x1f:
		return sign | 0x7c00
	case exp <= 0:
		return sign | f16Subnormal(mant, exp)
	}
	h := uint32(exp)<<10 | mant>>13
	// A carry out of the mantissa correctly bumps the exponent, up to Inf.
	h += roundBit(mant, 13, h)
	return sign | uint16(h)
}

// f16Subnormal encodes a float32 whose binary16 exponent (exp ≤ 0) is below
// the normal range. The result may round up to the smallest normal, whose
// bit pattern follows on naturally.
func f16Subnormal(mant uint32, exp int32) uint16 {
	if exp < -10 {
		return 0 // below half of the smallest subnormal 2^-24
	}
	m := mant | 0x800000 // restore the implicit leading one
	shift := uint(14 - exp)
	h := m >> shift
	return uint16(h + roundBit(m, shift, h))
}

// roundBit returns 1 when the shift low bits of m, dropped to give kept,
// must round kept up under round-to-nearest-even.
func roundBit(m uint32, shift uint, kept uint32) uint32 {
	half := uint32(1) << (shift - 1)
	rem := m & (half<<1 - 1)
	if rem > half || (rem == half && kept&1 == 1) {
		return 1
	}
	return 0
}

// DecodeFloat32 converts little-endian elements of dtype dt in src to
// float32 in dst; len(src) must be exactly len(dst)·dt.Size(). It is the
// conversion ReadFloat32 applies, exported for callers that hold raw bytes.
func DecodeFloat32(dt DType, src []byte, dst []float32) error {
	if !dt.IsFloat() {
		return fmt.Errorf("safetensors: cannot convert dtype %q to float32 (only F32, F16, BF16, F64)", dt)
	}
	if len(src) != len(dst)*dt.Size() {
		return fmt.Errorf("safetensors: %d bytes of %s do not hold %d elements", len(src), dt, len(dst))
	}
	decodeFloat32(dt, src, dst)
	return nil
}

// decodeFloat32 is DecodeFloat32 without checks, for validated callers.
func decodeFloat32(dt DType, src []byte, dst []float32) {
	le := binary.LittleEndian
	switch dt {
	case F32:
		src = src[:4*len(dst)] // lets the compiler drop bounds checks
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(src[4*i:]))
		}
	case BF16:
		decodeBF16(src, dst)
	case F16:
		src = src[:2*len(dst)]
		for i := range dst {
			dst[i] = F16ToF32(le.Uint16(src[2*i:]))
		}
	case F64:
		src = src[:8*len(dst)]
		for i := range dst {
			dst[i] = float32(math.Float64frombits(le.Uint64(src[8*i:])))
		}
	}
}

// decodeBF16 widens four elements per 8-byte load, which roughly doubles
// throughput over one 2-byte load per element; the tail goes one by one.
func decodeBF16(src []byte, dst []float32) {
	le := binary.LittleEndian
	n := len(dst) &^ 3
	for i := 0; i < n; i += 4 {
		v := le.Uint64(src[2*i:])
		d := dst[i : i+4 : i+4]
		d[0] = math.Float32frombits(uint32(v) << 16)
		d[1] = math.Float32frombits(uint32(v>>16) << 16)
		d[2] = math.Float32frombits(uint32(v>>32) << 16)
		d[3] = math.Float32frombits(uint32(v>>48) << 16)
	}
	for i := n; i < len(dst); i++ {
		dst[i] = BF16ToF32(le.Uint16(src[2*i:]))
	}
}

// EncodeFloat32 converts src to little-endian elements of dtype dt in dst
// (F32, F16 and BF16 round to nearest even; F64 is exact); len(dst) must be
// exactly len(src)·dt.Size(). It is the conversion WriteFile applies.
func EncodeFloat32(dt DType, src []float32, dst []byte) error {
	if !dt.IsFloat() {
		return fmt.Errorf("safetensors: cannot convert float32 to dtype %q (only F32, F16, BF16, F64)", dt)
	}
	if len(dst) != len(src)*dt.Size() {
		return fmt.Errorf("safetensors: %d bytes of %s cannot hold %d elements", len(dst), dt, len(src))
	}
	encodeFloat32(dt, src, dst)
	return nil
}

// encodeFloat32 is EncodeFloat32 without checks, for validated callers.
func encodeFloat32(dt DType, src []float32, dst []byte) {
	le := binary.LittleEndian
	switch dt {
	case F32:
		dst = dst[:4*len(src)]
		for i, v := range src {
			le.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case BF16:
		dst = dst[:2*len(src)]
		for i, v := range src {
			le.PutUint16(dst[2*i:], F32ToBF16(v))
		}
	case F16:
		dst = dst[:2*len(src)]
		for i, v := range src {
			le.PutUint16(dst[2*i:], F32ToF16(v))
		}
	case F64:
		dst = dst[:8*len(src)]
		for i, v := range src {
			le.PutUint64(dst[8*i:], math.Float64bits(float64(v)))
		}
	}
}
