package eval

import "testing"

// The expected values were printed by CPython 3.11:
//
//	random.seed(0); [random.randint(0, 999) for _ in range(5)],
//	[random.randint(0, 2**31) for _ in range(3)], [random.randint(0, 1<<40) for _ in range(2)]
//	random.seed(12345); [random.randint(0, 10) for _ in range(5)]
func TestPyRandomMatchesCPython(t *testing.T) {
	r := NewPyRandom(0)
	var got []int
	for i := 0; i < 5; i++ {
		got = append(got, r.RandInt(0, 999))
	}
	for i := 0; i < 3; i++ {
		got = append(got, r.RandInt(0, 1<<31))
	}
	for i := 0; i < 2; i++ {
		got = append(got, r.RandInt(0, 1<<40))
	}
	want := []int{864, 394, 776, 911, 430, 173879092, 1112038970, 2087043557, 788025983492, 480641685011}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("draw %d: got %d, want %d (all: %v)", i, got[i], want[i], got)
		}
	}
	r = NewPyRandom(12345)
	for i, w := range []int{6, 0, 4, 5, 3} {
		if g := r.RandInt(0, 10); g != w {
			t.Fatalf("seed 12345 draw %d: got %d want %d", i, g, w)
		}
	}
}
