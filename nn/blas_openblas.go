//go:build openblas

package nn

/*
#cgo LDFLAGS: -lopenblas
void openblas_set_num_threads(int);
char* openblas_get_corename(void);
*/
import "C"

import (
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/netlib/blas/netlib"
)

type openblasKernel struct{ netlib.Implementation }

func (openblasKernel) Name() string { return "openblas" }

// OpenBLAS runs single-threaded: Gemm spreads large products over
// goroutines in fixed row chunks (deterministic whatever the core count),
// and OpenBLAS's own threads would otherwise spin against the engine's
// goroutines (attention heads run in parallel).
func (openblasKernel) splitRows() {}

func (openblasKernel) install() {
	C.openblas_set_num_threads(1)
	blas64.Use(netlib.Implementation{})
	blas32.Use(netlib.Implementation{})
}

func openBLAS() (Kernel, bool) { return openblasKernel{}, true }

// SetBLASThreads sets OpenBLAS's thread count (benchmarks).
func SetBLASThreads(n int) { C.openblas_set_num_threads(C.int(n)) }

// BLASCore names the CPU kernel OpenBLAS chose at start-up (e.g. Haswell,
// SkylakeX, Zen): it follows the processor and OPENBLAS_CORETYPE, and
// different cores round sgemm differently, so bitwise results are per
// (kernel, core).
func BLASCore() string { return C.GoString(C.openblas_get_corename()) }
