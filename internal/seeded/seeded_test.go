package seeded

import "testing"

func TestSameCoordsSameStream(t *testing.T) {
	a, b := New(0, Metric, 3, 1, 4), New(0, Metric, 3, 1, 4)
	for i := 0; i < 100; i++ {
		if a.Uint64() != b.Uint64() {
			t.Fatal("equal coordinates gave different streams")
		}
	}
}

func TestDifferentCoordsDiffer(t *testing.T) {
	seen := map[uint64][]uint64{}
	for s := uint64(0); s < 4; s++ {
		for step := uint64(0); step < 16; step++ {
			for m := uint64(0); m < 7; m++ {
				v := New(s, Metric, step, 2, m).Uint64()
				if prev, ok := seen[v]; ok {
					t.Fatalf("coords %v and %v gave the same first value", prev, []uint64{s, step, m})
				}
				seen[v] = []uint64{s, step, m}
			}
		}
	}
	// Swapping coordinates must change the stream.
	if New(1, 2, 3).Uint64() == New(1, 3, 2).Uint64() {
		t.Fatal("coordinate order is ignored")
	}
}
