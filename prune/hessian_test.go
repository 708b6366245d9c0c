package prune

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/lapack64"
)

// hessTestInputs returns rows×cols float32 inputs with correlated channels.
func hessTestInputs(rng *rand.Rand, rows, cols int) []float32 {
	mix := make([]float64, cols*cols)
	for i := range mix {
		mix[i] = rng.NormFloat64() / math.Sqrt(float64(cols))
	}
	x := make([]float32, rows*cols)
	z := make([]float64, cols)
	for r := range rows {
		for k := range z {
			z[k] = rng.NormFloat64()
		}
		for j := range cols {
			s := z[j]
			for k := range cols {
				s += z[k] * mix[k*cols+j]
			}
			x[r*cols+j] = float32(s)
		}
	}
	return x
}

// hessTestSPD returns a well-conditioned random SPD n×n matrix.
func hessTestSPD(rng *rand.Rand, n int) []float64 {
	h := NewHessian(n)
	h.Add(hessTestInputs(rng, 2*n+8, n), 2*n+8, n, 1)
	for j := range n {
		h.H[j*n+j] += 0.01
	}
	return h.H
}

func TestHessianAddMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	const n = 300 // > hessPanel: several panels and a ragged last one
	h := NewHessian(n)
	var all [][]float32
	samples := 0
	for _, b := range []struct{ rows, samples int }{{600, 3}, {7, 1}, {130, 2}} {
		x := hessTestInputs(rng, b.rows, n)
		h.Add(x, b.rows, n, b.samples)
		all = append(all, x)
		samples += b.samples
	}
	if h.Samples != samples {
		t.Fatalf("Samples = %d, want %d", h.Samples, samples)
	}
	// Definition: H = 2/Samples · Σ_tokens x xᵀ.
	want := make([]float64, n*n)
	for _, x := range all {
		for r := 0; r < len(x)/n; r++ {
			row := x[r*n : (r+1)*n]
			for i, a := range row {
				for j, b := range row {
					want[i*n+j] += float64(a) * float64(b)
				}
			}
		}
	}
	var maxDiff, maxRef float64
	for i := range want {
		want[i] *= 2 / float64(samples)
		maxDiff = max(maxDiff, math.Abs(h.H[i]-want[i]))
		maxRef = max(maxRef, math.Abs(want[i]))
	}
	if maxDiff > 1e-12*maxRef {
		t.Errorf("max |H − 2/S·ΣxxᵀΣ| = %g (scale %g)", maxDiff, maxRef)
	}
	for i := range n {
		for j := range i {
			if h.H[i*n+j] != h.H[j*n+i] {
				t.Fatalf("H not exactly symmetric at (%d,%d)", i, j)
			}
		}
	}
}

func TestHessianAddPanicsOnMisuse(t *testing.T) {
	for name, f := range map[string]func(h *Hessian){
		"cols":    func(h *Hessian) { h.Add(make([]float32, 6), 2, 3, 1) },
		"length":  func(h *Hessian) { h.Add(make([]float32, 7), 2, 4, 1) },
		"samples": func(h *Hessian) { h.Add(make([]float32, 8), 2, 4, 0) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f(NewHessian(4))
		}()
	}
}

// hessLiteralInvChol is the reference route: chol(a), a⁻¹ from it, then the
// upper Cholesky factor of a⁻¹ (gonum's Potrf, Potri, Potrf).
func hessLiteralInvChol(t *testing.T, a []float64, n int) []float64 {
	c := append([]float64(nil), a...)
	tri, ok := lapack64.Potrf(blas64.Symmetric{Uplo: blas.Upper, N: n, Stride: n, Data: c})
	if !ok {
		t.Fatal("reference Potrf failed")
	}
	inv, ok := lapack64.Potri(tri)
	if !ok {
		t.Fatal("reference Potri failed")
	}
	hessMirrorUpper(inv.Data, n)
	if _, ok := lapack64.Potrf(blas64.Symmetric{Uplo: blas.Upper, N: n, Stride: n, Data: inv.Data}); !ok {
		t.Fatal("reference Potrf of the inverse failed")
	}
	for i := range n {
		clear(inv.Data[i*n : i*n+i])
	}
	return inv.Data
}

func TestHessianInvCholUpperMatchesLiteralRoute(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	for _, n := range []int{1, 2, 5, 128, 129, 300, 517} {
		a := hessTestSPD(rng, n)
		want := hessLiteralInvChol(t, a, n)
		u := append([]float64(nil), a...)
		if col := hessInvCholUpper(u, n); col >= 0 {
			t.Fatalf("n=%d: not PD at %d", n, col)
		}
		var maxDiff, maxRef float64
		for i := range u {
			if i%n < i/n && u[i] != 0 {
				t.Fatalf("n=%d: lower entry %d not zero", n, i)
			}
			maxDiff = max(maxDiff, math.Abs(u[i]-want[i]))
			maxRef = max(maxRef, math.Abs(want[i]))
		}
		if maxDiff > 1e-10*maxRef {
			t.Errorf("n=%d: max |U − U_ref| = %g (scale %g)", n, maxDiff, maxRef)
		}
		// UᵀU·A = I.
		uta := make([]float64, n*n)
		prod := make([]float64, n*n)
		g := func(d []float64) blas64.General { return blas64.General{Rows: n, Cols: n, Stride: n, Data: d} }
		blas64.Gemm(blas.Trans, blas.NoTrans, 1, g(u), g(u), 0, g(uta))
		blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, g(uta), g(a), 0, g(prod))
		for i := range n {
			for j := range n {
				want := 0.0
				if i == j {
					want = 1
				}
				if math.Abs(prod[i*n+j]-want) > 1e-9 {
					t.Fatalf("n=%d: (UᵀU·A)[%d,%d] = %g", n, i, j, prod[i*n+j])
				}
			}
		}
	}
}

func TestHessianInvCholUpperRejectsIndefinite(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	const n = 300
	a := hessTestSPD(rng, n)
	a[200*n+200] = -1 // a negative diagonal entry: no Cholesky factor
	if col := hessInvCholUpper(a, n); col < 0 {
		t.Fatal("indefinite matrix factored")
	}
}
