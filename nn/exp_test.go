package nn

import (
	"math"
	"testing"
)

func TestExpNegAccuracy(t *testing.T) {
	var worst float64
	for x := -700.0; x <= 0; x += 0.0137 {
		want := math.Exp(x)
		got := expNeg(x)
		if rel := math.Abs(got-want) / want; rel > worst {
			worst = rel
		}
	}
	for _, x := range []float64{0, -1e-300, -1e-9, -0.5, -math.Ln2 / 2, -math.Ln2} {
		if rel := math.Abs(expNeg(x)-math.Exp(x)) / math.Exp(x); rel > worst {
			worst = rel
		}
	}
	if worst > 1e-8 {
		t.Fatalf("expNeg max relative error %.3g > 1e-8", worst)
	}
	if expNeg(-800) != 0 {
		t.Fatal("expNeg(-800) should underflow to 0")
	}
	t.Logf("max relative error %.3g", worst)
}

func BenchmarkExpNeg(b *testing.B) {
	var s float64
	for i := 0; i < b.N; i++ {
		s += expNeg(-float64(i%1000) * 0.01)
	}
	_ = s
}

func BenchmarkMathExp(b *testing.B) {
	var s float64
	for i := 0; i < b.N; i++ {
		s += math.Exp(-float64(i%1000) * 0.01)
	}
	_ = s
}
