package prune

import (
	"fmt"
	"math"
)

// ProxSparse's 2:4 proximal operator (Liu et al., 2025; DESIGN §2.3 step 7).
// For a group v of 4 consecutive weights of a row it approximates
//
//	argmin_w ½‖w − v‖² + λ2·Σ_{a<b<c} |w_a w_b w_c|,
//
// whose regulariser vanishes exactly on the 2-sparse groups, so repeated
// proximal steps drive the weights towards a 2:4 pattern.
//
// An optimal w has w_a = 0 or sign(w_a) = sign(v_a) (flipping a sign can
// only lower ½(w_a−v_a)² and leaves the regulariser alone) and |w_a| ≤ |v_a|
// (shrinking towards v lowers both terms), so the problem reduces to
// z = |v| sorted in decreasing order and w ≥ 0. There, for fixed others, the
// objective in w_a is ½(w_a − z_a)² + λ2·c_a·w_a with c_a the sum of the
// pairwise products of the other non-zero entries, minimised by
// w_a = max(z_a − λ2·c_a, 0). As in the released ProxSparse code, three
// candidates are compared and the one of lowest objective wins (ties to the
// sparser one):
//   - 2-sparse: the two largest |v| kept unchanged, the others 0
//     (regulariser 0, so nothing to shrink);
//   - 3 non-zeros: the update above on the three largest entries, the
//     fourth fixed at 0;
//   - 4 non-zeros: the update on all four entries.
//
// Both alternating solutions start from 0, sweep the coordinates from the
// smallest |v| to the largest, and stop after proxMaxIter sweeps or when a
// sweep moves w by less than proxTol in L1 norm.

const (
	proxMaxIter = 100
	proxTol     = 1e-8
)

// ProxObjective is ½‖w − v‖² + λ2·Σ_{a<b<c} |w_a w_b w_c|.
func ProxObjective(w, v [4]float64, lambda2 float64) float64 {
	var sq float64
	for i := range w {
		d := w[i] - v[i]
		sq += d * d
	}
	reg := math.Abs(w[0]*w[1]*w[2]) + math.Abs(w[0]*w[1]*w[3]) +
		math.Abs(w[0]*w[2]*w[3]) + math.Abs(w[1]*w[2]*w[3])
	return sq/2 + lambda2*reg
}

// ProxGroup4 returns the ProxSparse proximal point of one group. lambda2
// must be finite and ≥ 0 (it panics otherwise).
func ProxGroup4(v [4]float64, lambda2 float64) [4]float64 {
	if !(lambda2 >= 0) || math.IsInf(lambda2, 1) {
		panic(fmt.Sprintf("prune: ProxGroup4: lambda2 = %v", lambda2))
	}
	if lambda2 == 0 {
		return v
	}
	// Order by decreasing |v|, equal magnitudes by index (stable).
	order := [4]int{0, 1, 2, 3}
	for a := 1; a < 4; a++ {
		for b := a; b > 0 && math.Abs(v[order[b]]) > math.Abs(v[order[b-1]]); b-- {
			order[b], order[b-1] = order[b-1], order[b]
		}
	}
	var z [4]float64
	for k, i := range order {
		z[k] = math.Abs(v[i])
	}
	if z[2] == 0 {
		return v // already 2-sparse: objective 0, the minimum
	}
	best := [4]float64{z[0], z[1], 0, 0}
	bestObj := ProxObjective(best, z, lambda2)
	for _, c := range [2][4]float64{proxAlternate(z, lambda2, 3), proxAlternate(z, lambda2, 4)} {
		if f := ProxObjective(c, z, lambda2); f < bestObj {
			best, bestObj = c, f
		}
	}
	var w [4]float64
	for k, i := range order {
		w[i] = math.Copysign(best[k], v[i])
	}
	return w
}

// proxAlternate is the coordinate-wise minimisation on the first nz (3 or 4)
// entries of the sorted magnitudes z; the others stay 0.
func proxAlternate(z [4]float64, lambda2 float64, nz int) [4]float64 {
	var w [4]float64
	for range proxMaxIter {
		var moved float64
		for a := nz - 1; a >= 0; a-- {
			// c = Σ of the pairwise products of the other entries (zeros
			// beyond nz contribute nothing). Conversions block FMA fusion so
			// results are the same on every platform.
			var c float64
			for b := range 4 {
				for d := b + 1; d < 4; d++ {
					if b != a && d != a {
						c += float64(w[b] * w[d])
					}
				}
			}
			next := max(z[a]-float64(lambda2*c), 0)
			moved += math.Abs(next - w[a])
			w[a] = next
		}
		if moved < proxTol {
			break
		}
	}
	return w
}

// ProxNM applies ProxGroup4 to every group of 4 consecutive weights of each
// row of the out×in row-major w, in place. in must be a multiple of 4
// (ErrNotDivisible otherwise) and lambda2 finite and ≥ 0; lambda2 = 0 leaves
// w unchanged. Rows are processed in parallel; each group is independent, so
// the result does not depend on the split.
func ProxNM(w []float32, out, in int, lambda2 float64) error {
	switch {
	case out < 0 || in < 0 || len(w) != out*in:
		return fmt.Errorf("prune: ProxNM: %d weights for a %d×%d matrix", len(w), out, in)
	case in%4 != 0:
		return fmt.Errorf("prune: ProxNM: %w (in=%d, M=4)", ErrNotDivisible, in)
	case !(lambda2 >= 0) || math.IsInf(lambda2, 1):
		return fmt.Errorf("prune: ProxNM: lambda2 = %v, want finite ≥ 0", lambda2)
	case lambda2 == 0 || out == 0:
		return nil
	}
	hessParallel(out, func(r0, r1 int) {
		for g := r0 * in; g < r1*in; g += 4 {
			v := [4]float64{float64(w[g]), float64(w[g+1]), float64(w[g+2]), float64(w[g+3])}
			p := ProxGroup4(v, lambda2)
			w[g], w[g+1], w[g+2], w[g+3] = float32(p[0]), float32(p[1]), float32(p[2]), float32(p[3])
		}
	})
	return nil
}
