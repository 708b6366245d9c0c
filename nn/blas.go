// Package nn is the numeric engine: tensors as flat row-major slices, the
// matrix-product kernel, and the LLaMA decoder forward and backward passes.
//
// Everything is generic over float32 (production) and float64 (used by the
// finite-difference gradient checks, which need the extra precision).
package nn

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/blas/gonum"
)

// Float is the element type of the engine.
type Float interface{ ~float32 | ~float64 }

// Kernel is a general matrix product provider (row-major BLAS gemm).
type Kernel interface {
	Name() string
	blas.Float32Level3
	blas.Float64Level3
	// install makes the kernel gonum's global BLAS as well, so that
	// gonum's lapack and blas64 users (SparseGPT's factorisations, the
	// Hessian) compute with it too.
	install()
}

type gonumKernel struct{ gonum.Implementation }

func (gonumKernel) Name() string { return "gonum" }

func (gonumKernel) install() {
	blas64.Use(gonum.Implementation{})
	blas32.Use(gonum.Implementation{})
}

// kernel returns the compiled-in kernel called name.
func kernel(name string) (Kernel, bool) {
	switch name {
	case "gonum":
		return gonumKernel{}, true
	case "openblas":
		return openBLAS()
	}
	return nil, false
}

// active is the kernel the engine computes with. It is gonum's pure-Go
// implementation until a program chooses one with UseKernel (the
// unipruning command does so at start-up).
var active Kernel = gonumKernel{}

// ActiveKernel names the kernel in use.
func ActiveKernel() string { return active.Name() }

// Kernels lists the names of the compiled-in kernels, best first.
func Kernels() []string {
	if _, ok := openBLAS(); ok {
		return []string{"openblas", "gonum"}
	}
	return []string{"gonum"}
}

// BestKernel names the fastest compiled-in kernel: OpenBLAS when the
// binary was built with it (tag openblas), otherwise gonum.
func BestKernel() string { return Kernels()[0] }

// UseKernel makes the named kernel ("auto": BestKernel) the one the engine
// and gonum's global BLAS compute with. Call it at start-up, never while a
// computation runs. Results are bitwise reproducible for one kernel;
// kernels round differently.
func UseKernel(name string) error {
	if name == "auto" {
		name = BestKernel()
	}
	k, ok := kernel(name)
	if !ok {
		return fmt.Errorf("matrix kernel %q is not compiled in (have %s)", name, strings.Join(Kernels(), ", "))
	}
	k.install()
	active = k
	return nil
}

func tr(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

// rowSplitter marks kernels that run single-threaded and want Gemm to
// spread large products over goroutines.
type rowSplitter interface{ splitRows() }

// gemmChunk is the number of rows of C per goroutine task. It is fixed,
// not derived from the core count, so the result of every row comes from
// the same call on any machine (bitwise-reproducible across hosts).
const gemmChunk = 256

// gemmRows computes C in independent chunks of gemmChunk rows on a pool
// of GOMAXPROCS goroutines.
func gemmRows[T Float](kn Kernel, tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	chunks := (m + gemmChunk - 1) / gemmChunk
	parallelFor(chunks, runtime.GOMAXPROCS(0), func(_, ch int) {
		i0 := ch * gemmChunk
		ao := i0 * lda
		if tA {
			ao = i0
		}
		gemmCall(kn, tA, tB, min(gemmChunk, m-i0), n, k, alpha, a[ao:], lda, b, ldb, beta, c[i0*ldc:], ldc)
	})
}

func gemmCall[T Float](kn Kernel, tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	switch av := any(a).(type) {
	case []float32:
		kn.Sgemm(tr(tA), tr(tB), m, n, k, float32(alpha), av, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	case []float64:
		kn.Dgemm(tr(tA), tr(tB), m, n, k, float64(alpha), av, lda, any(b).([]float64), ldb, float64(beta), any(c).([]float64), ldc)
	}
}

// Gemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices, where
// op(X) is X or Xᵀ, op(A) is m×k, op(B) is k×n and C is m×n.
func Gemm[T Float](tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if timing.Load() {
		defer func(t time.Time) { gemmNanos.Add(int64(time.Since(t))) }(time.Now())
	}
	// Every product goes to the active kernel: single-threaded OpenBLAS is
	// 4–20× faster than gonum even on attention-sized products (64×256×64:
	// 112 against 28 GFLOP/s on the build machine).
	if _, split := active.(rowSplitter); split && m > gemmChunk {
		gemmRows(active, tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	gemmCall(active, tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// NaiveGemm is the reference triple loop (float64 accumulation) that the
// optimized kernels are tested against.
func NaiveGemm[T Float](tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	at := func(i, p int) float64 {
		if tA {
			return float64(a[p*lda+i])
		}
		return float64(a[i*lda+p])
	}
	bt := func(p, j int) float64 {
		if tB {
			return float64(b[j*ldb+p])
		}
		return float64(b[p*ldb+j])
	}
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += at(i, p) * bt(p, j)
			}
			old := float64(0)
			if beta != 0 {
				old = float64(beta) * float64(c[i*ldc+j])
			}
			c[i*ldc+j] = T(float64(alpha)*s + old)
		}
	}
}

// Matrix-product timing for benchmarks: off by default (one atomic load
// per call).
var (
	timing    atomic.Bool
	gemmNanos atomic.Int64
)

// TimeGemm switches the accumulation of time spent in Gemm on or off and
// resets the total.
func TimeGemm(on bool) {
	gemmNanos.Store(0)
	timing.Store(on)
}

// GemmTime is the time spent in Gemm since TimeGemm(true), summed over
// goroutines.
func GemmTime() time.Duration { return time.Duration(gemmNanos.Load()) }
