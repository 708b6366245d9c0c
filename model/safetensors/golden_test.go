package safetensors

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// goldenHeader is the header WriteFile must produce for goldenSpecs:
// compact JSON, __metadata__ first, tensors by name although stored in the
// opposite order, padded with spaces from 140 to 144 bytes.
const goldenHeader = `{"__metadata__":{"format":"pt"},` +
	`"a":{"dtype":"F32","shape":[2],"data_offsets":[2,10]},` +
	`"b":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}}` + "    "

var goldenSpecs = []WriteSpec{
	{Name: "b", DType: BF16, Shape: []int{1}},
	{Name: "a", DType: F32, Shape: []int{2}},
}

// goldenFile is the whole file, byte by byte.
func goldenFile() []byte {
	var b []byte
	b = append(b, 0x90, 0, 0, 0, 0, 0, 0, 0) // header length 144, little-endian u64
	b = append(b, goldenHeader...)
	b = append(b, 0x80, 0x3f)             // b = bf16(1.0)
	b = append(b, 0x00, 0x00, 0x80, 0x3f) // a[0] = 1.0
	b = append(b, 0x00, 0x00, 0x00, 0xc0) // a[1] = -2.0
	return b
}

func TestGoldenWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.safetensors")
	vals := [][]float32{{1}, {1, -2}}
	err := WriteFile(path, goldenSpecs, map[string]string{"format": "pt"}, func(i int, dst []float32) error {
		copy(dst, vals[i])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := goldenFile(); !bytes.Equal(got, want) {
		t.Fatalf("written file differs from golden:\n got %q\nwant %q", got, want)
	}
}

func TestGoldenRead(t *testing.T) {
	f, err := Open(bytesFile(t, goldenFile()))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.DataOffset() != 152 {
		t.Errorf("DataOffset() = %d, want 152", f.DataOffset())
	}
	ts := f.Tensors()
	if len(ts) != 2 || ts[0].Name != "b" || ts[0].Begin != 0 || ts[1].Name != "a" || ts[1].End != 10 {
		t.Fatalf("Tensors() = %+v, want b then a by offset", ts)
	}
	a, err := f.ReadFloat32("a")
	if err != nil || len(a) != 2 || a[0] != 1 || a[1] != -2 {
		t.Errorf("a = %v, %v", a, err)
	}
	b, err := f.ReadFloat32("b")
	if err != nil || len(b) != 1 || b[0] != 1 {
		t.Errorf("b = %v, %v", b, err)
	}
	if f.Metadata()["format"] != "pt" {
		t.Errorf("metadata = %v", f.Metadata())
	}
}

// TestGoldenIndex pins the index layout transformers uses.
func TestGoldenIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), IndexFileName)
	wm := map[string]string{"b.weight": "model-00002-of-00002.safetensors", "a.weight": "model-00001-of-00002.safetensors"}
	if err := WriteIndex(path, wm, 1234); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := `{
  "metadata": {
    "total_size": 1234
  },
  "weight_map": {
    "a.weight": "model-00001-of-00002.safetensors",
    "b.weight": "model-00002-of-00002.safetensors"
  }
}
`
	if string(got) != want {
		t.Fatalf("index:\n%s\nwant:\n%s", got, want)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Error("temporary index left behind")
	}
}
