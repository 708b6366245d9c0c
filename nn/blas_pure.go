//go:build !openblas

package nn

// SetBLASThreads is a no-op without OpenBLAS.
func SetBLASThreads(n int) {}
