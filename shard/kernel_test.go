package shard_test

import (
	"os"
	"testing"

	"github.com/unipruning/unipruning/nn"
)

// TestMain computes with the best compiled-in matrix kernel, as the
// command does at start-up (OpenBLAS under -tags openblas, else gonum).
func TestMain(m *testing.M) {
	if err := nn.UseKernel("auto"); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}
