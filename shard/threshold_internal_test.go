package shard

import "testing"

// TestSplitRuns: the runs cover every matrix once, in order, at most n of
// them, none empty.
func TestSplitRuns(t *testing.T) {
	for _, sizes := range [][]int{{5}, {1, 1, 1}, {100, 1, 1, 1, 100}, {3, 9, 27, 81}, {7, 7, 7, 7, 7, 7, 7}} {
		vals := make([][]float32, len(sizes))
		for i, n := range sizes {
			vals[i] = make([]float32, n)
		}
		for n := 1; n <= 4; n++ {
			runs := splitRuns(vals, n)
			if len(runs) == 0 || len(runs) > n || runs[0][0] != 0 || runs[len(runs)-1][1] != len(vals) {
				t.Fatalf("sizes %v, n %d: runs %v", sizes, n, runs)
			}
			for i, r := range runs {
				if r[1] <= r[0] || (i > 0 && r[0] != runs[i-1][1]) {
					t.Fatalf("sizes %v, n %d: runs %v", sizes, n, runs)
				}
			}
		}
	}
}
