//go:build !(linux || darwin || freebsd)

package sysmem

import "errors"

func rusageMaxRSS() (uint64, error) {
	return 0, errors.New("sysmem: peak RSS is not available on this platform")
}
