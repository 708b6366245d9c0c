package compressed

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkCompress: one LLaMA-7B MLP matrix (11008×4096, bf16) at 50%
// unstructured and 2:4, compressed and decompressed.
func BenchmarkCompress(b *testing.B) {
	const rows, cols = 11008, 4096
	r := rand.New(rand.NewPCG(1, 1))
	for _, f := range []string{SparseBitmask, Sparse24Bitmask} {
		raw := randomSparse(r, "BF16", rows, cols, 0.5, f == Sparse24Bitmask)
		b.Run(f+"/compress", func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for i := 0; i < b.N; i++ {
				if _, err := Compress(f, "BF16", rows, cols, raw); err != nil {
					b.Fatal(err)
				}
			}
		})
		ps, _ := Compress(f, "BF16", rows, cols, raw)
		m := partsMap(ps)
		b.Run(f+"/decompress", func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for i := 0; i < b.N; i++ {
				if _, _, _, _, err := Decompress(f, m); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(f+"/count", func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for i := 0; i < b.N; i++ {
				Count(raw, 2)
			}
		})
	}
}
