//go:build linux || darwin || freebsd

package sysmem

import (
	"runtime"
	"syscall"
)

// rusageMaxRSS returns getrusage's peak RSS in bytes (kilobytes on Linux and
// the BSDs, bytes on Darwin).
func rusageMaxRSS() (uint64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	if runtime.GOOS == "darwin" {
		return uint64(ru.Maxrss), nil
	}
	return uint64(ru.Maxrss) * 1024, nil
}
