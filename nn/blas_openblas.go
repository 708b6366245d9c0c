//go:build openblas

package nn

/*
#cgo LDFLAGS: -lopenblas
*/
import "C"

import "gonum.org/v1/netlib/blas/netlib"

type openblasKernel struct{ netlib.Implementation }

func (openblasKernel) Name() string { return "openblas" }

func init() {
	kernels["openblas"] = openblasKernel{}
	active = openblasKernel{}
}
