package prune

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/lapack64"
)

// Hessian accumulates the layer-wise reconstruction Hessian of SparseGPT
// (DESIGN §2.5): H = 2/Samples · Σ_tokens x xᵀ over the inputs x ∈ R^N that a
// linear layer sees. H is N×N, row-major and exactly symmetric after every
// Add. Samples counts calibration windows, not tokens, as in the reference
// implementation, so H is a running average over windows.
type Hessian struct {
	N       int
	H       []float64
	Samples int

	buf []float64 // float64 copy of one token chunk, reused across Adds
}

const (
	hessPanel = 256 // columns of H computed per gemm
	hessChunk = 512 // tokens converted to float64 at a time (bounds buf)
)

// NewHessian returns an empty n×n accumulator.
func NewHessian(n int) *Hessian {
	if n <= 0 {
		panic(fmt.Sprintf("prune: NewHessian(%d)", n))
	}
	return &Hessian{N: n, H: make([]float64, n*n)}
}

// Add folds a batch of inputs into the running average, in the order of the
// reference add_batch: H ← H·Samples/(Samples+s); Samples += s; x is scaled
// by sqrt(2/Samples); H += xᵀx. x is rows×cols row-major (one token per
// row), cols must equal N, and samples (≥ 1) is the number of calibration
// windows the rows came from. Misuse is a programming error and panics.
func (h *Hessian) Add(x []float32, rows, cols, samples int) {
	if cols != h.N || rows < 0 || len(x) != rows*cols || samples < 1 {
		panic(fmt.Sprintf("prune: Hessian(N=%d).Add: %d values as %d×%d, %d samples",
			h.N, len(x), rows, cols, samples))
	}
	n := h.N
	decay := float64(h.Samples) / float64(h.Samples+samples)
	for i := range n {
		row := h.H[i*n+i : (i+1)*n] // upper triangle; mirrored below
		for j := range row {
			row[j] *= decay
		}
	}
	h.Samples += samples
	scale := math.Sqrt(2 / float64(h.Samples))
	for r0 := 0; r0 < rows; r0 += hessChunk {
		r1 := min(r0+hessChunk, rows)
		h.addChunk(x[r0*n:r1*n], r1-r0, scale)
	}
	hessMirrorUpper(h.H, n)
}

// addChunk adds (scale·x)ᵀ(scale·x) to the upper triangle of H. Each gemm
// fills a column panel down to its diagonal block, which skips almost all of
// the redundant lower half while keeping the calls large (gonum's Dsyrk is
// serial and several times slower than its parallel Dgemm).
func (h *Hessian) addChunk(x []float32, rows int, scale float64) {
	n := h.N
	if cap(h.buf) < rows*n {
		h.buf = make([]float64, hessChunk*n)
	}
	xs := h.buf[:rows*n]
	for i, v := range x {
		xs[i] = scale * float64(v)
	}
	for j0 := 0; j0 < n; j0 += hessPanel {
		j1 := min(j0+hessPanel, n)
		a := blas64.General{Rows: rows, Cols: j1, Stride: n, Data: xs}
		b := blas64.General{Rows: rows, Cols: j1 - j0, Stride: n, Data: xs[j0:]}
		c := blas64.General{Rows: j1, Cols: j1 - j0, Stride: n, Data: h.H[j0:]}
		blas64.Gemm(blas.Trans, blas.NoTrans, 1, a, b, 1, c)
	}
}

// hessMirrorUpper copies the upper triangle of the n×n matrix a onto its
// lower triangle, making a exactly symmetric.
func hessMirrorUpper(a []float64, n int) {
	for i := 1; i < n; i++ {
		for j := range i {
			a[i*n+j] = a[j*n+i]
		}
	}
}

// hessInvCholUpper overwrites the symmetric positive definite n×n matrix a
// with U, the upper Cholesky factor of a⁻¹ (a⁻¹ = UᵀU, lower triangle zero),
// which is what SparseGPT calls Hinv. It returns the 0-based column at which
// the factorisation found a non-positive pivot, or -1.
//
// The reference computes chol(a) → a⁻¹ → chol(a⁻¹, upper). With P the
// reversal permutation, chol(P a P) = L gives a = R Rᵀ with R = P L P upper,
// so a⁻¹ = (R⁻¹)ᵀ R⁻¹ and, by uniqueness of the Cholesky factor, U = R⁻¹ =
// P L⁻¹ P. One factorisation plus one triangular inverse costs n³/3 + n³/3
// flops against the reference's n³/3 + 2n³/3 + n³/3, and never forms a⁻¹.
// Reversing a row-major matrix in both indices is reversing its storage.
func hessInvCholUpper(a []float64, n int) int {
	slices.Reverse(a)
	if bad := hessCholLower(a, n); bad >= 0 {
		return n - 1 - bad
	}
	for i := range n {
		clear(a[i*n+i+1 : (i+1)*n])
	}
	hessInvLower(a, n)
	slices.Reverse(a)
	return -1
}

const (
	hessBlock = 128 // diagonal block of the blocked factorisations
	hessRows  = 256 // row panel of their gemm updates
)

// hessCholLower factors a = L Lᵀ in place (lower triangle, right-looking,
// blocked so that almost all flops are parallel gemm). The strictly upper
// triangle is left untouched. It returns the block column holding the first
// non-positive pivot, or -1.
func hessCholLower(a []float64, n int) int {
	var t []float64
	for k := 0; k < n; k += hessBlock {
		kb := min(hessBlock, n-k)
		diag := blas64.Symmetric{Uplo: blas.Lower, N: kb, Stride: n, Data: a[k*n+k:]}
		if _, ok := lapack64.Potrf(diag); !ok {
			return k
		}
		m := n - k - kb
		if m == 0 {
			break
		}
		// A21 ← A21·L11⁻ᵀ, rows independent.
		l11 := blas64.Triangular{Uplo: blas.Lower, Diag: blas.NonUnit, N: kb, Stride: n, Data: a[k*n+k:]}
		a21 := a[(k+kb)*n+k:]
		hessParallel(m, func(r0, r1 int) {
			b := blas64.General{Rows: r1 - r0, Cols: kb, Stride: n, Data: a21[r0*n:]}
			blas64.Trsm(blas.Right, blas.Trans, 1, l11, b)
		})
		// A22 ← A22 − A21·A21ᵀ on the lower triangle, via a transposed copy
		// of A21 so that gemm runs NoTrans×NoTrans.
		t = slices.Grow(t[:0], kb*m)[:kb*m]
		for r := range m {
			for c := range kb {
				t[c*m+r] = a21[r*n+c]
			}
		}
		a22 := a[(k+kb)*n+k+kb:]
		for r0 := 0; r0 < m; r0 += hessRows {
			r1 := min(r0+hessRows, m)
			x := blas64.General{Rows: r1 - r0, Cols: kb, Stride: n, Data: a21[r0*n:]}
			y := blas64.General{Rows: kb, Cols: r1, Stride: m, Data: t}
			c := blas64.General{Rows: r1 - r0, Cols: r1, Stride: n, Data: a22[r0*n:]}
			blas64.Gemm(blas.NoTrans, blas.NoTrans, -1, x, y, 1, c)
		}
	}
	return -1
}

// hessInvLower overwrites the lower triangular a (strictly upper part zero)
// with its inverse. Blocks are processed from the bottom: with the trailing
// block already inverted in place, A21 ← −(L22⁻¹·A21)·L11⁻¹, then L11 is
// inverted. L22⁻¹·A21 is a triangular product done as row-panel gemms (the
// zero upper triangle makes the panel products exact), bottom panel first so
// that the rows a panel reads are still the original A21.
func hessInvLower(a []float64, n int) {
	tmp := make([]float64, hessRows*hessBlock)
	for j := ((n - 1) / hessBlock) * hessBlock; j >= 0; j -= hessBlock {
		jb := min(hessBlock, n-j)
		m := n - j - jb
		l11 := blas64.Triangular{Uplo: blas.Lower, Diag: blas.NonUnit, N: jb, Stride: n, Data: a[j*n+j:]}
		if m > 0 {
			a21 := a[(j+jb)*n+j:]
			x22 := a[(j+jb)*n+j+jb:]
			for r0 := ((m - 1) / hessRows) * hessRows; r0 >= 0; r0 -= hessRows {
				r1 := min(r0+hessRows, m)
				x := blas64.General{Rows: r1 - r0, Cols: r1, Stride: n, Data: x22[r0*n:]}
				y := blas64.General{Rows: r1, Cols: jb, Stride: n, Data: a21}
				c := blas64.General{Rows: r1 - r0, Cols: jb, Stride: jb, Data: tmp}
				blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, x, y, 0, c)
				for r := r0; r < r1; r++ {
					copy(a21[r*n:r*n+jb], tmp[(r-r0)*jb:(r-r0+1)*jb])
				}
			}
			hessParallel(m, func(r0, r1 int) {
				b := blas64.General{Rows: r1 - r0, Cols: jb, Stride: n, Data: a21[r0*n:]}
				blas64.Trsm(blas.Right, blas.NoTrans, -1, l11, b)
			})
		}
		lapack64.Trtri(l11) // cannot fail: the Cholesky pivots are positive
	}
}

// hessParallel splits [0, n) into contiguous ranges, one per available CPU
// (ranges of at least 64 rows), runs f on each and waits for all of them.
// The split only changes which goroutine runs a row, never the arithmetic.
func hessParallel(n int, f func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), (n+63)/64)
	if workers <= 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Go(func() { f(lo, hi) })
	}
	wg.Wait()
}
