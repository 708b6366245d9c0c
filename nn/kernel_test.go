package nn

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"gonum.org/v1/gonum/blas/blas64"
)

// TestMain computes with the best compiled-in matrix kernel, as the
// command does at start-up (OpenBLAS under -tags openblas, else gonum).
// `make test` runs this package once per build, so both kernels run.
func TestMain(m *testing.M) {
	if err := UseKernel("auto"); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// TestUseKernel: a kernel is chosen by name only, for the engine and for
// gonum's global BLAS together; an unknown name is refused and changes
// nothing.
func TestUseKernel(t *testing.T) {
	defer UseKernel("auto")
	if ActiveKernel() != BestKernel() {
		t.Fatalf("TestMain chose %s, the best compiled kernel is %s", ActiveKernel(), BestKernel())
	}
	for _, name := range Kernels() {
		if err := UseKernel(name); err != nil {
			t.Fatal(err)
		}
		if ActiveKernel() != name {
			t.Fatalf("UseKernel(%s): active %s", name, ActiveKernel())
		}
		want := map[string]string{"gonum": "gonum.Implementation", "openblas": "netlib.Implementation"}[name]
		if got := fmt.Sprintf("%T", blas64.Implementation()); got != want {
			t.Fatalf("UseKernel(%s) left gonum's global BLAS at %s, want %s", name, got, want)
		}
	}
	if err := UseKernel("cublas"); err == nil || !strings.Contains(err.Error(), "not compiled in") {
		t.Fatalf("UseKernel(cublas): %v", err)
	}
	if ActiveKernel() != Kernels()[len(Kernels())-1] {
		t.Fatalf("a refused kernel changed the active one to %s", ActiveKernel())
	}
}
