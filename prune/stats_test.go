package prune

import (
	"math"
	"slices"
	"testing"
)

func TestStatsAccumulates(t *testing.T) {
	s := NewStats(3)
	s.Add([]float32{1, -2, 0, 3, 4, 0.5}, 2, 3) // two tokens
	s.Add([]float32{0, 0, 2}, 1, 3)
	if s.Tokens != 3 {
		t.Fatalf("tokens %d", s.Tokens)
	}
	if !slices.Equal(s.SumSq, []float64{10, 20, 4.25}) {
		t.Fatalf("SumSq %v", s.SumSq)
	}
	if n := s.Norm(); !slices.Equal(n, []float64{math.Sqrt(10), math.Sqrt(20), math.Sqrt(4.25)}) {
		t.Fatalf("Norm %v", n)
	}
	if m := s.MeanSq(); !slices.Equal(m, []float64{10.0 / 3, 20.0 / 3, 4.25 / 3}) {
		t.Fatalf("MeanSq %v", m)
	}

	o := NewStats(3)
	o.Add([]float32{1, 1, 1}, 1, 3)
	if err := s.Merge(o); err != nil {
		t.Fatal(err)
	}
	if s.Tokens != 4 || !slices.Equal(s.SumSq, []float64{11, 21, 5.25}) {
		t.Fatalf("after merge: %d %v", s.Tokens, s.SumSq)
	}
	if err := s.Merge(NewStats(2)); err == nil {
		t.Fatal("merged stats of a different width")
	}

	s.Reset()
	if s.Tokens != 0 || !slices.Equal(s.SumSq, []float64{0, 0, 0}) || s.In != 3 {
		t.Fatalf("after reset: %+v", s)
	}
	if m := s.MeanSq(); !slices.Equal(m, []float64{0, 0, 0}) {
		t.Fatalf("MeanSq of no tokens: %v", m)
	}
}

func TestStatsAddIsExactFloat64(t *testing.T) {
	// float32 inputs square exactly in float64: 3e-20² would underflow in
	// float32 arithmetic.
	s := NewStats(1)
	s.Add([]float32{3e-20, 1e20}, 2, 1)
	want := float64(float32(3e-20))*float64(float32(3e-20)) + float64(float32(1e20))*float64(float32(1e20))
	if s.SumSq[0] != want {
		t.Fatalf("SumSq %v, want %v", s.SumSq[0], want)
	}
}

func TestStatsAddDoesNotAllocate(t *testing.T) {
	s := NewStats(64)
	x := make([]float32, 8*64)
	if n := testing.AllocsPerRun(20, func() { s.Add(x, 8, 64) }); n != 0 {
		t.Fatalf("Add allocates %v times", n)
	}
}

func TestStatsAddPanicsOnWrongShape(t *testing.T) {
	for name, f := range map[string]func(){
		"width":  func() { NewStats(3).Add(make([]float32, 4), 1, 4) },
		"short":  func() { NewStats(3).Add(make([]float32, 5), 2, 3) },
		"negrow": func() { NewStats(3).Add(nil, -1, 3) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}
