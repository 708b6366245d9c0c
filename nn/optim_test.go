package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestAdamWHandComputed checks two AdamW steps against values worked out
// by hand from the update rule.
func TestAdamWHandComputed(t *testing.T) {
	w := []float64{1, -2}
	m := make([]float64, 2)
	v := make([]float64, 2)
	c := AdamConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1}
	lr := 0.01
	AdamW(w, []float64{0.5, -1}, m, v, lr, 1, c)
	// Step 1: m̂ = g, v̂ = g², so the step is lr·g/(|g|+eps) ≈ lr·sign(g),
	// after decay w·(1−lr·wd).
	want0 := 1*(1-lr*0.1) - lr*0.5/(0.5+1e-8)
	want1 := -2*(1-lr*0.1) + lr*1/(1+1e-8)
	if math.Abs(w[0]-want0) > 1e-15 || math.Abs(w[1]-want1) > 1e-15 {
		t.Fatalf("step 1: got %v, want [%v %v]", w, want0, want1)
	}
	AdamW(w, []float64{0.5, -1}, m, v, lr, 2, c)
	// Same gradient twice: m̂ = g and v̂ = g² again.
	want0 = want0*(1-lr*0.1) - lr*0.5/(0.5+1e-8)
	if math.Abs(w[0]-want0) > 1e-15 {
		t.Fatalf("step 2: got %v want %v", w[0], want0)
	}
}

func TestClipAndSchedule(t *testing.T) {
	if c := ClipCoef(0.5, 1); c != 1 {
		t.Fatalf("no clipping expected, coef %v", c)
	}
	if c := ClipCoef(4, 1); math.Abs(c-1/(4+1e-6)) > 1e-15 {
		t.Fatalf("coef %v", c)
	}
	s := WarmupFor(1e-4, 100)
	cases := map[int]float64{0: 0, 5: 5e-5, 10: 1e-4, 55: 5e-5, 100: 0}
	for k, want := range cases {
		if got := s.LR(k); math.Abs(got-want) > 1e-18 {
			t.Errorf("LR(%d) = %v, want %v", k, got, want)
		}
	}
}

// TestAdamWClippedIsScaleThenAdamW checks the fused clip + AdamW against
// the two separate calls, bit for bit, over several steps, clip factors
// (including 1) and weight decay, in float32 and float64.
func TestAdamWClippedIsScaleThenAdamW(t *testing.T) {
	testAdamWClipped[float32](t)
	testAdamWClipped[float64](t)
}

func testAdamWClipped[T Float](t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	const n = 1001
	w1, m1, v1 := make([]T, n), make([]T, n), make([]T, n)
	for i := range w1 {
		w1[i] = T(r.NormFloat64())
	}
	w2, m2, v2 := append([]T(nil), w1...), make([]T, n), make([]T, n)
	for step, clip := range []float64{0.37, 1, 0.9999, 0.0123} {
		g := make([]T, n)
		for i := range g {
			g[i] = T(r.NormFloat64() * 3)
		}
		g2 := append([]T(nil), g...)
		c := AdamConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-10, WeightDecay: 0.01 * float64(step%2)}
		Scale(g, clip)
		AdamW(w1, g, m1, v1, 1e-3, step+1, c)
		AdamWClipped(w2, g2, m2, v2, 1e-3, step+1, c, clip)
		for i := range w1 {
			if w1[i] != w2[i] || m1[i] != m2[i] || v1[i] != v2[i] {
				t.Fatalf("step %d clip %v, element %d: w %v/%v m %v/%v v %v/%v", step, clip, i, w1[i], w2[i], m1[i], m2[i], v1[i], v2[i])
			}
		}
	}
}
