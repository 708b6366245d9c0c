// Package seeded derives independent, reproducible random generators from a
// run seed and a tuple of coordinates (purpose, step, layer, matrix, ...).
//
// DESIGN §2.7: no randomness comes from a global source. A generator for a
// (seed, step, layer, matrix) tuple yields the same numbers whichever
// process or shard asks for it, and in whatever order, which is what makes
// a cluster run and a resumed run bitwise identical to a one-process run.
package seeded

import "math/rand/v2"

// Purposes separate the streams used for different things.
const (
	Calibration uint64 = 1
	Metric      uint64 = 2
	Eval        uint64 = 3
)

// splitmix64 is a bijective mixer with good avalanche, used to turn the
// coordinates into well-spread PCG state.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// New returns the generator of (seed, coords...).
func New(seed uint64, coords ...uint64) *rand.Rand {
	a, b := splitmix64(seed), splitmix64(^seed)
	for i, c := range coords {
		a = splitmix64(a ^ c ^ uint64(i)<<56)
		b = splitmix64(b + c + uint64(i+1)*0x632be59bd9b4e019)
	}
	return rand.New(rand.NewPCG(a, b))
}
