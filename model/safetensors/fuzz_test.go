package safetensors

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to Open: it must never panic, and any file
// it accepts must satisfy the invariants readers rely on.
func FuzzOpen(f *testing.F) {
	f.Add(goldenFile())
	f.Add([]byte{})
	f.Add(prefixOnly(0, 8))
	f.Add(prefixOnly(2, 2))
	for _, h := range []string{
		`{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"F4","shape":[2],"data_offsets":[4,5]}}`,
		`{"__metadata__":{"k":"v"},"a":{"dtype":"F64","shape":[1,1],"data_offsets":[0,8]}}`,
		`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}`,
	} {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
		f.Add(append(append(b, h...), make([]byte, 9)...))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "fuzz.safetensors")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		sf, err := Open(path)
		if err != nil {
			return
		}
		defer sf.Close()
		checkInvariants(t, sf, int64(len(data)))
	})
}

// checkInvariants asserts what a successful Open promises.
func checkInvariants(t *testing.T, f *File, fileSize int64) {
	dataLen := fileSize - f.DataOffset()
	if f.DataOffset() < 9 || dataLen < 0 {
		t.Fatalf("data offset %d in a %d-byte file", f.DataOffset(), fileSize)
	}
	var prevEnd int64
	for _, ti := range f.Tensors() {
		if ti.Begin < 0 || ti.Begin > ti.End || ti.End > dataLen {
			t.Fatalf("%s: range [%d, %d] outside [0, %d]", ti.Name, ti.Begin, ti.End, dataLen)
		}
		if ti.Begin < ti.End {
			if ti.Begin < prevEnd {
				t.Fatalf("%s overlaps the previous tensor", ti.Name)
			}
			prevEnd = ti.End
		}
		if want, err := byteSize(ti.DType, ti.Shape); err != nil || want != ti.NumBytes() {
			t.Fatalf("%s: %d bytes for shape %v of %s (%v)", ti.Name, ti.NumBytes(), ti.Shape, ti.DType, err)
		}
		if got, ok := f.Info(ti.Name); !ok || got.Begin != ti.Begin {
			t.Fatalf("Info(%q) disagrees with Tensors()", ti.Name)
		}
		raw, err := f.ReadRaw(ti.Name)
		if err != nil || int64(len(raw)) != ti.NumBytes() {
			t.Fatalf("ReadRaw(%q): %d bytes, %v", ti.Name, len(raw), err)
		}
		vals, err := f.ReadFloat32(ti.Name)
		if ti.DType.IsFloat() != (err == nil) {
			t.Fatalf("ReadFloat32(%q) of %s: %v", ti.Name, ti.DType, err)
		}
		if err == nil && len(vals) != ti.NumElements() {
			t.Fatalf("ReadFloat32(%q): %d values, want %d", ti.Name, len(vals), ti.NumElements())
		}
	}
}
