package safetensors

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStreamWriter: tensors added one at a time read back exactly; the
// header sits in the reserved space, padded with spaces, data 8-aligned;
// the same tensors written by WriteRawFile have the same data section.
func TestStreamWriter(t *testing.T) {
	specs := []WriteSpec{
		{Name: "a.shape", DType: I64, Shape: []int{2, 1}},
		{Name: "a.compressed", DType: BF16, Shape: []int{3}},
		{Name: "a.bitmask", DType: U8, Shape: []int{2, 1}},
		{Name: "b\"quoted", DType: F32, Shape: []int{2}},
	}
	data := [][]byte{
		{2, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0},
		{1, 2, 3, 4, 5, 6},
		{0x13, 0x05},
		{0, 0, 128, 63, 0, 0, 0, 64},
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	meta := map[string]string{"format": "pt"}
	path := filepath.Join(t.TempDir(), "s.safetensors")
	w, err := CreateStream(path, HeaderBound(names, meta))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range specs {
		if err := w.Add(s, data[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Add(WriteSpec{Name: "bad", DType: F32, Shape: []int{3}}, []byte{1}); err == nil {
		t.Fatal("a tensor of the wrong size was accepted")
	}
	if err := w.Add(specs[0], data[0]); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Fatalf("duplicate name: %v", err)
	}
	if err := w.Close(meta); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.DataOffset()%8 != 0 {
		t.Errorf("data section at %d, not 8-aligned", f.DataOffset())
	}
	for i, s := range specs {
		got, err := f.ReadRaw(s.Name)
		if err != nil || !bytes.Equal(got, data[i]) {
			t.Errorf("%s: %v %v", s.Name, got, err)
		}
	}
	if f.Metadata()["format"] != "pt" {
		t.Errorf("metadata %v", f.Metadata())
	}
	raw, _ := os.ReadFile(path)
	ref, err := EncodeRaw(specs, meta, func(i int) ([]byte, error) { return data[i], nil })
	if err != nil {
		t.Fatal(err)
	}
	refFile, _ := OpenBytes("ref", ref)
	if !bytes.Equal(raw[f.DataOffset():], ref[refFile.DataOffset():]) {
		t.Error("data section differs from WriteRawFile's")
	}
	if hdr := string(raw[8:f.DataOffset()]); strings.TrimRight(hdr, " ") != strings.TrimRight(string(ref[8:refFile.DataOffset()]), " ") {
		t.Errorf("header differs:\n%s\n%s", hdr, ref[8:refFile.DataOffset()])
	}
	if _, err := os.Stat(path + ".tmp"); err == nil {
		t.Error("temporary file left behind")
	}
}

func TestStreamWriterBoundTooSmall(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.safetensors")
	w, err := CreateStream(path, 8)
	if err != nil {
		t.Fatal(err)
	}
	w.Add(WriteSpec{Name: "x", DType: U8, Shape: []int{1}}, []byte{1})
	if err := w.Close(nil); err == nil || !strings.Contains(err.Error(), "HeaderBound") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("a file was left with a truncated header")
	}
	if _, err := os.Stat(path + ".tmp"); err == nil {
		t.Error("temporary file left behind")
	}
}
