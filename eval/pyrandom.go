package eval

import "math/bits"

// PyRandom reproduces the integer draws of CPython's random module
// (MT19937 seeded with random.seed(int), getrandbits, randint), so that the
// calibration and C4 window selections of the reference Wanda/SparseGPT/GPTQ
// scripts (random.seed(0) then random.randint) are drawn identically.
type PyRandom struct {
	mt  [624]uint32
	idx int
}

// NewPyRandom seeds like random.seed(seed) for a non-negative integer seed.
func NewPyRandom(seed uint64) *PyRandom {
	r := &PyRandom{}
	key := []uint32{uint32(seed)}
	if hi := uint32(seed >> 32); hi != 0 {
		key = append(key, hi)
	}
	r.initByArray(key)
	return r
}

func (r *PyRandom) initGenrand(s uint32) {
	r.mt[0] = s
	for i := 1; i < 624; i++ {
		r.mt[i] = 1812433253*(r.mt[i-1]^(r.mt[i-1]>>30)) + uint32(i)
	}
	r.idx = 624
}

func (r *PyRandom) initByArray(key []uint32) {
	r.initGenrand(19650218)
	i, j := 1, 0
	for k := max(624, len(key)); k > 0; k-- {
		r.mt[i] = (r.mt[i] ^ ((r.mt[i-1] ^ (r.mt[i-1] >> 30)) * 1664525)) + key[j] + uint32(j)
		i, j = i+1, j+1
		if i >= 624 {
			r.mt[0], i = r.mt[623], 1
		}
		if j >= len(key) {
			j = 0
		}
	}
	for k := 623; k > 0; k-- {
		r.mt[i] = (r.mt[i] ^ ((r.mt[i-1] ^ (r.mt[i-1] >> 30)) * 1566083941)) - uint32(i)
		i++
		if i >= 624 {
			r.mt[0], i = r.mt[623], 1
		}
	}
	r.mt[0] = 0x80000000
}

func (r *PyRandom) next() uint32 {
	if r.idx >= 624 {
		r.twist()
	}
	y := r.mt[r.idx]
	r.idx++
	y ^= y >> 11
	y ^= (y << 7) & 0x9d2c5680
	y ^= (y << 15) & 0xefc60000
	return y ^ (y >> 18)
}

func (r *PyRandom) twist() {
	for i := 0; i < 624; i++ {
		y := (r.mt[i] & 0x80000000) | (r.mt[(i+1)%624] & 0x7fffffff)
		v := r.mt[(i+397)%624] ^ (y >> 1)
		if y&1 != 0 {
			v ^= 0x9908b0df
		}
		r.mt[i] = v
	}
	r.idx = 0
}

// getrandbits returns k random bits (k ≤ 64), word order as CPython.
func (r *PyRandom) getrandbits(k int) uint64 {
	if k <= 32 {
		return uint64(r.next() >> (32 - k))
	}
	lo := uint64(r.next())
	hi := uint64(r.next() >> (64 - k))
	return hi<<32 | lo
}

// Below returns a uniform integer in [0, n) as random._randbelow.
func (r *PyRandom) Below(n uint64) uint64 {
	if n == 0 {
		return 0
	}
	k := bits.Len64(n)
	v := r.getrandbits(k)
	for v >= n {
		v = r.getrandbits(k)
	}
	return v
}

// RandInt returns an integer in [a, b] as random.randint(a, b).
func (r *PyRandom) RandInt(a, b int) int { return a + int(r.Below(uint64(b-a+1))) }
