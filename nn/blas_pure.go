//go:build !openblas

package nn

// openBLAS reports that this build has no OpenBLAS kernel.
func openBLAS() (Kernel, bool) { return nil, false }

// SetBLASThreads is a no-op without OpenBLAS.
func SetBLASThreads(n int) {}

// BLASCore is empty without OpenBLAS.
func BLASCore() string { return "" }
