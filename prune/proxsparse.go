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
	return proxObjective(w[0], w[1], w[2], w[3], v[0], v[1], v[2], v[3], lambda2)
}

// proxObjective is ProxObjective on scalars (arrays are not kept in
// registers; the solver below calls this three times per group). The
// conversions block FMA fusion so candidates compare alike on every platform.
func proxObjective(w0, w1, w2, w3, v0, v1, v2, v3, lambda2 float64) float64 {
	d0, d1, d2, d3 := w0-v0, w1-v1, w2-v2, w3-v3
	sq := float64(d0*d0) + float64(d1*d1) + float64(d2*d2) + float64(d3*d3)
	reg := math.Abs(w0*w1*w2) + math.Abs(w0*w1*w3) + math.Abs(w0*w2*w3) + math.Abs(w1*w2*w3)
	return sq/2 + float64(lambda2*reg)
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
	z0, z1, z2, z3 := math.Abs(v[order[0]]), math.Abs(v[order[1]]), math.Abs(v[order[2]]), math.Abs(v[order[3]])
	if z2 == 0 {
		return v // already 2-sparse: objective 0, the minimum
	}
	b0, b1, b2, b3 := proxSolveSorted(z0, z1, z2, z3, lambda2)
	var w [4]float64
	w[order[0]] = math.Copysign(b0, v[order[0]])
	w[order[1]] = math.Copysign(b1, v[order[1]])
	w[order[2]] = math.Copysign(b2, v[order[2]])
	w[order[3]] = math.Copysign(b3, v[order[3]])
	return w
}

// proxSolveSorted returns the best of the three candidates for the sorted
// magnitudes z0 ≥ z1 ≥ z2 ≥ z3 ≥ 0, ties to the sparser candidate.
func proxSolveSorted(z0, z1, z2, z3, lambda2 float64) (w0, w1, w2, w3 float64) {
	w0, w1 = z0, z1
	best := proxObjective(w0, w1, 0, 0, z0, z1, z2, z3, lambda2)
	a0, a1, a2 := proxAlternate3(z0, z1, z2, lambda2)
	if f := proxObjective(a0, a1, a2, 0, z0, z1, z2, z3, lambda2); f < best {
		w0, w1, w2, best = a0, a1, a2, f
	}
	a0, a1, a2, a3 := proxAlternate4(z0, z1, z2, z3, lambda2)
	if f := proxObjective(a0, a1, a2, a3, z0, z1, z2, z3, lambda2); f < best {
		w0, w1, w2, w3 = a0, a1, a2, a3
	}
	return w0, w1, w2, w3
}

// proxAlternate3 is the coordinate-wise minimisation on the three largest
// sorted magnitudes (the fourth entry stays 0), smallest first. The float64
// conversions block FMA fusion, so the results are the same on every
// platform.
func proxAlternate3(z0, z1, z2, lambda2 float64) (w0, w1, w2 float64) {
	for range proxMaxIter {
		n2 := max(z2-float64(lambda2*float64(w0*w1)), 0)
		n1 := max(z1-float64(lambda2*float64(w0*n2)), 0)
		n0 := max(z0-float64(lambda2*float64(n1*n2)), 0)
		moved := math.Abs(n2-w2) + math.Abs(n1-w1) + math.Abs(n0-w0)
		w0, w1, w2 = n0, n1, n2
		if moved < proxTol {
			break
		}
	}
	return w0, w1, w2
}

// proxAlternate4 is the same on all four entries; each coordinate's weight
// is the sum of the pairwise products of the other three.
func proxAlternate4(z0, z1, z2, z3, lambda2 float64) (w0, w1, w2, w3 float64) {
	for range proxMaxIter {
		n3 := max(z3-float64(lambda2*(float64(w0*w1)+float64(w0*w2)+float64(w1*w2))), 0)
		n2 := max(z2-float64(lambda2*(float64(w0*w1)+float64(w0*n3)+float64(w1*n3))), 0)
		n1 := max(z1-float64(lambda2*(float64(w0*n2)+float64(w0*n3)+float64(n2*n3))), 0)
		n0 := max(z0-float64(lambda2*(float64(n1*n2)+float64(n1*n3)+float64(n2*n3))), 0)
		moved := math.Abs(n3-w3) + math.Abs(n2-w2) + math.Abs(n1-w1) + math.Abs(n0-w0)
		w0, w1, w2, w3 = n0, n1, n2, n3
		if moved < proxTol {
			break
		}
	}
	return w0, w1, w2, w3
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
