package prune

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// proxTestLambdas spans weak to dominating regularisation for |v| ~ N(0,1):
// λ2·|v|² from ≪ 1 (4-entry solutions) to ≫ 1 (2-sparse).
var proxTestLambdas = []float64{1e-3, 0.05, 0.2, 0.5, 1, 2, 5, 50}

func proxTestGroup(rng *rand.Rand) [4]float64 {
	var v [4]float64
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	return v
}

// proxLE reports a ≤ b up to a relative tolerance of 1e-9.
func proxLE(a, b float64) bool { return a <= b+1e-9*math.Max(math.Abs(b), 1e-300) }

func TestProxGroup4BeatsEachCandidate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 4))
	counts := map[int]int{}
	for range 3000 {
		v := proxTestGroup(rng)
		for _, lam := range proxTestLambdas {
			w := ProxGroup4(v, lam)
			f := ProxObjective(w, v, lam)
			// The candidates, built independently in the original order.
			var z [4]float64
			order := []int{0, 1, 2, 3}
			slices.SortStableFunc(order, func(a, b int) int {
				if math.Abs(v[a]) > math.Abs(v[b]) {
					return -1
				}
				if math.Abs(v[a]) < math.Abs(v[b]) {
					return 1
				}
				return 0
			})
			for k, i := range order {
				z[k] = math.Abs(v[i])
			}
			a0, a1, a2 := proxAlternate3(z[0], z[1], z[2], lam)
			b0, b1, b2, b3 := proxAlternate4(z[0], z[1], z[2], z[3], lam)
			for _, c := range [][4]float64{{z[0], z[1], 0, 0}, {a0, a1, a2, 0}, {b0, b1, b2, b3}} {
				if g := ProxObjective(c, z, lam); !proxLE(f, g) {
					t.Fatalf("v=%v λ=%v: objective %v above candidate %v (%v)", v, lam, f, c, g)
				}
			}
			nz := 0
			for _, x := range w {
				if x != 0 {
					nz++
				}
			}
			counts[nz]++
		}
	}
	t.Logf("non-zeros of the chosen points: %v", counts)
	for _, nz := range []int{2, 3, 4} {
		if counts[nz] == 0 {
			t.Errorf("no test group ended with %d non-zeros: the test does not cover that candidate", nz)
		}
	}
}

func TestProxGroup4LocalOptimality(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 4))
	for range 300 {
		v := proxTestGroup(rng)
		for _, lam := range proxTestLambdas {
			w := ProxGroup4(v, lam)
			f := ProxObjective(w, v, lam)
			for _, scale := range []float64{1e-6, 1e-4, 1e-2, 0.3} {
				for range 50 {
					var p [4]float64
					for i := range p {
						p[i] = w[i] + scale*rng.NormFloat64()
					}
					if g := ProxObjective(p, v, lam); !proxLE(f, g) {
						t.Fatalf("v=%v λ=%v: w=%v (f=%.17g) beaten by %v (%.17g)", v, lam, w, f, p, g)
					}
				}
			}
		}
	}
}

// TestProxGroup4GridSearch compares with an exhaustive search over a grid
// of the box 0 ≤ sign(v_a)·w_a ≤ |v_a|, which holds every minimiser (see
// proxsparse.go). The grid contains the 2-sparse point exactly.
func TestProxGroup4GridSearch(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const steps = 30
	groups := 8
	if testing.Short() {
		groups = 2
	}
	worst := math.Inf(-1)
	for range groups {
		v := proxTestGroup(rng)
		for _, lam := range proxTestLambdas {
			w := ProxGroup4(v, lam)
			f := ProxObjective(w, v, lam)
			best := math.Inf(1)
			var p [4]float64
			for a := range steps + 1 {
				p[0] = v[0] * float64(a) / steps
				for b := range steps + 1 {
					p[1] = v[1] * float64(b) / steps
					for c := range steps + 1 {
						p[2] = v[2] * float64(c) / steps
						for d := range steps + 1 {
							p[3] = v[3] * float64(d) / steps
							best = min(best, ProxObjective(p, v, lam))
						}
					}
				}
			}
			if !proxLE(f, best) {
				t.Errorf("v=%v λ=%v: objective %.17g above grid minimum %.17g", v, lam, f, best)
			}
			worst = max(worst, (f-best)/best)
		}
	}
	t.Logf("largest (f − grid min)/grid min: %.3g (≤ 0: never beaten)", worst)
}

func TestProxGroup4SpecialCases(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for range 200 {
		v := proxTestGroup(rng)
		if w := ProxGroup4(v, 0); w != v {
			t.Fatalf("λ=0 changed %v to %v", v, w)
		}
		w := ProxGroup4(v, 1e8)
		order := []int{0, 1, 2, 3}
		slices.SortFunc(order, func(a, b int) int { return int(math.Copysign(1, math.Abs(v[b])-math.Abs(v[a]))) })
		for k, i := range order {
			want := v[i]
			if k >= 2 {
				want = 0
			}
			if w[i] != want {
				t.Fatalf("λ=1e8: %v → %v, want the two largest kept", v, w)
			}
		}
		// Groups with at most two non-zeros are fixed points.
		s := v
		zero := rng.Perm(4)
		s[zero[0]], s[zero[1]] = 0, 0
		if w := ProxGroup4(s, 0.7); w != s {
			t.Fatalf("2-sparse %v moved to %v", s, w)
		}
	}
}

func TestProxGroup4Symmetries(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 4))
	perms := [][4]int{{1, 0, 2, 3}, {3, 2, 1, 0}, {2, 3, 0, 1}, {1, 2, 3, 0}}
	for range 500 {
		v := proxTestGroup(rng)
		for _, lam := range proxTestLambdas {
			w := ProxGroup4(v, lam)
			for _, p := range perms {
				var pv [4]float64
				for k, i := range p {
					pv[k] = v[i]
				}
				pw := ProxGroup4(pv, lam)
				for k, i := range p {
					if pw[k] != w[i] {
						t.Fatalf("permutation %v of %v: %v vs %v", p, v, pw, w)
					}
				}
			}
			flip := [4]float64{-v[0], v[1], -v[2], v[3]}
			fw := ProxGroup4(flip, lam)
			if fw != [4]float64{-w[0], w[1], -w[2], w[3]} {
				t.Fatalf("sign flip of %v: %v vs %v", v, fw, w)
			}
		}
	}
}

func TestProxNM(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 4))
	const out, in, lam = 130, 24, 0.3
	w := make([]float32, out*in)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	orig := slices.Clone(w)
	if err := ProxNM(w, out, in, 0); err != nil || !slices.Equal(w, orig) {
		t.Fatalf("λ=0: err %v or weights changed", err)
	}
	if err := ProxNM(w, out, in, lam); err != nil {
		t.Fatal(err)
	}
	for g := 0; g < len(w); g += 4 {
		v := [4]float64{float64(orig[g]), float64(orig[g+1]), float64(orig[g+2]), float64(orig[g+3])}
		p := ProxGroup4(v, lam)
		for k := range 4 {
			if w[g+k] != float32(p[k]) {
				t.Fatalf("group at %d: %v, want %v", g, w[g:g+4], p)
			}
		}
	}
	if err := ProxNM(make([]float32, 2*6), 2, 6, lam); !errors.Is(err, ErrNotDivisible) {
		t.Errorf("in=6: err = %v", err)
	}
	for _, bad := range []float64{-1, math.NaN(), math.Inf(1)} {
		if err := ProxNM(make([]float32, 8), 2, 4, bad); err == nil {
			t.Errorf("λ=%v accepted", bad)
		}
	}
}

func BenchmarkProxGroup4(b *testing.B) {
	rng := rand.New(rand.NewPCG(8, 4))
	vs := make([][4]float64, 1024)
	for i := range vs {
		vs[i] = proxTestGroup(rng)
		for k := range vs[i] {
			vs[i][k] *= 0.02
		}
	}
	var sink float64
	i := 0
	for b.Loop() {
		sink += ProxGroup4(vs[i&1023], 1e-3)[0]
		i++
	}
	_ = sink
}

func BenchmarkProxNM4096x4096(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 4))
	w := make([]float32, 4096*4096)
	for i := range w {
		w[i] = float32(0.02 * rng.NormFloat64())
	}
	src := slices.Clone(w)
	for b.Loop() {
		copy(w, src)
		if err := ProxNM(w, 4096, 4096, 1e-3); err != nil {
			b.Fatal(err)
		}
	}
}
