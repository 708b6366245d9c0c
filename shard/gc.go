package shard

import (
	"os"
	"runtime/debug"
	"sync"
)

// gcPercent is the garbage collector's growth target (GOGC) in a process
// that holds a worker. The worker's state (weights, gradients, Adam
// moments, z, Γ) is large and lives for the whole search while a step makes
// little garbage; with Go's default of 100 the heap may grow to twice the
// live state before a collection, so a burst of garbage (a checkpoint or Γ
// image) doubled the peak RSS of a 110M search (5.8 GB for 2.9 GB of
// state). At 20 the heap stays within 1.2× the live state; the collections
// this adds cost little because the state is pointer-free float slices.
const gcPercent = 20

var gcOnce sync.Once

// tuneGC lowers the growth target once per process, unless the user chose
// one with the GOGC environment variable.
func tuneGC() {
	gcOnce.Do(func() {
		if os.Getenv("GOGC") == "" {
			debug.SetGCPercent(gcPercent)
		}
	})
}
