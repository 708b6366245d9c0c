package prune

import (
	"math/rand/v2"
	"testing"
)

// maskBenchScores returns n Gaussian-magnitude scores (distinct, like real
// saliencies) from a fixed seed.
func maskBenchScores(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 99))
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

func BenchmarkUnstructured4096x11008(b *testing.B) {
	out, in := 4096, 11008
	s := maskBenchScores(out*in, 1)
	Magnitude(s, s, out, in)
	b.SetBytes(int64(4 * out * in))
	for b.Loop() {
		if _, err := Unstructured(s, out, in, 0.5); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnstructuredByRow4096x11008(b *testing.B) {
	out, in := 4096, 11008
	s := maskBenchScores(out*in, 1)
	b.SetBytes(int64(4 * out * in))
	for b.Loop() {
		if _, err := UnstructuredByRow(s, out, in, 0.5); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNM24_4096x11008(b *testing.B) {
	out, in := 4096, 11008
	s := maskBenchScores(out*in, 2)
	b.SetBytes(int64(4 * out * in))
	for b.Loop() {
		if _, err := NM(s, out, in, 2, 4); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSelectKth ranks 7 matrices of 4096×4096 (one LLaMA-7B layer's
// worth of values) spread over 4 partitions.
func BenchmarkSelectKth(b *testing.B) {
	const side = 4096
	parts := make([]Partition, 4)
	sp := make([]SlicePartition, 4)
	total := uint64(0)
	for m := 0; m < 7; m++ {
		v := maskBenchScores(side*side, uint64(10+m))
		sp[m%4].Values = append(sp[m%4].Values, v)
		total += uint64(len(v))
	}
	for i := range sp {
		parts[i] = sp[i]
	}
	b.SetBytes(int64(4 * total))
	for b.Loop() {
		if _, err := SelectKth(parts, total/2); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStochRIA(b *testing.B) {
	const side = 4096
	w := maskBenchScores(side*side, 3)
	ms := make([]float64, side)
	for j := range ms {
		ms[j] = float64(j%7) + 0.5
	}
	dst := make([]float32, side*side)
	rng := rand.New(rand.NewPCG(1, 2))
	b.SetBytes(int64(4 * side * side))
	for b.Loop() {
		StochRIA(dst, w, side, side, ms, rng)
	}
}

func BenchmarkRIA4096(b *testing.B) {
	const side = 4096
	w := maskBenchScores(side*side, 3)
	xn := make([]float64, side)
	for j := range xn {
		xn[j] = float64(j%7) + 0.5
	}
	dst := make([]float32, side*side)
	b.SetBytes(int64(4 * side * side))
	for b.Loop() {
		RIA(dst, w, side, side, xn, RIAAlpha)
	}
}
