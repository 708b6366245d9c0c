package safetensors

import (
	"path/filepath"
	"testing"
)

// BenchmarkReadFloat32BF16 measures converting a 64 MB BF16 tensor from
// disk (page cache) into a reused float32 buffer; MB/s counts BF16 bytes.
func BenchmarkReadFloat32BF16(b *testing.B) {
	const n = 32 << 20 // 32 Mi elements = 64 MB of BF16
	path := filepath.Join(b.TempDir(), "bench.safetensors")
	specs := []WriteSpec{{Name: "w", DType: BF16, Shape: []int{n}}}
	err := WriteFile(path, specs, nil, func(_ int, dst []float32) error {
		for i := range dst {
			dst[i] = float32(i%1000) * 0.001
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	dst := make([]float32, n)
	b.SetBytes(2 * n)
	b.ReportAllocs()
	for b.Loop() {
		if err := f.ReadFloat32Into("w", dst); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeFloat32 isolates the conversion loops from I/O, on a
// chunk of realistic small weights.
func BenchmarkDecodeFloat32(b *testing.B) {
	vals := make([]float32, chunkBytes/8)
	for i := range vals {
		vals[i] = float32(i%977-488) * 1e-4
	}
	for _, dt := range []DType{F32, F16, BF16, F64} {
		b.Run(string(dt), func(b *testing.B) {
			raw := make([]byte, len(vals)*dt.Size())
			encodeFloat32(dt, vals, raw)
			dst := make([]float32, len(vals))
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				decodeFloat32(dt, raw, dst)
			}
		})
	}
}
