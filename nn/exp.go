package nn

import (
	"math"
	"unsafe"
)

// expNeg approximates e^x for x ≤ 0 with relative error below 1e-8, which
// is far below float32 resolution (6e-8), at a fraction of math.Exp's cost.
// Softmax spends most of its time here: every attention score is
// exponentiated. x = n·ln2 + r with |r| ≤ ln2/2 (Cody–Waite split), e^r by
// its degree-7 Taylor polynomial (remainder ≤ 0.35⁸/8! ≈ 6e-9), and 2^n
// through the exponent bits.
func expNeg(x float64) float64 {
	if x < -700 {
		return 0
	}
	const (
		ln2Hi = 6.93147180369123816490e-01
		ln2Lo = 1.90821492927058770002e-10
		log2e = 1.44269504088896338700e+00
	)
	n := math.Floor(x*log2e + 0.5)
	r := x - n*ln2Hi - n*ln2Lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040)))))))
	return p * math.Float64frombits(uint64(int64(n)+1023)<<52)
}

// isF32 reports whether T is float32. Call it once per loop, not per
// element: generic code does not constant-fold it.
func isF32[T Float]() bool {
	var z T
	return unsafe.Sizeof(z) == 4
}
