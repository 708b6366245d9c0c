package statefile

import (
	"strings"
	"testing"
)

func TestEncodeDecode(t *testing.T) {
	ts := []Tensor{
		{Name: "b/z", Shape: []int{2, 3}, F32: []float32{1, -2, 3.5, 0, -0, 1e-40}},
		{Name: "a/first", Shape: []int{2, 2}, I32: []int32{-1, 0, 7, 128}},
	}
	img, err := Encode(ts, map[string]string{"step": "4"})
	if err != nil {
		t.Fatal(err)
	}
	img2, _ := Encode(ts, map[string]string{"step": "4"})
	if string(img) != string(img2) {
		t.Fatal("encoding is not deterministic")
	}
	d, err := Decode(img)
	if err != nil {
		t.Fatal(err)
	}
	if d.Meta["step"] != "4" || len(d.Tensors) != 2 {
		t.Fatalf("meta %v, %d tensors", d.Meta, len(d.Tensors))
	}
	for i, v := range ts[0].F32 {
		if d.Tensors["b/z"].F32[i] != v {
			t.Fatalf("F32 value %d changed", i)
		}
	}
	for i, v := range ts[1].I32 {
		if d.Tensors["a/first"].I32[i] != v {
			t.Fatalf("I32 value %d changed", i)
		}
	}
	for _, cut := range []int{len(img) / 2, len(img) - 1} {
		if _, err := Decode(img[:cut]); err == nil {
			t.Fatalf("a truncated image (%d of %d bytes) decoded", cut, len(img))
		}
	}
	bad := append([]byte(nil), img...)
	bad[len(bad)-2] ^= 0x55
	if _, err := Decode(bad); err == nil || !(strings.Contains(err.Error(), "checksum") || strings.Contains(err.Error(), "corrupt")) {
		t.Fatalf("a corrupted image decoded: %v", err)
	}
}
