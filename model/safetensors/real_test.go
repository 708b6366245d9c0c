package safetensors

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/unipruning/unipruning/internal/shareddata"
)

func TestRealStories260K(t *testing.T) {
	path := shareddata.Path(t, "models/stories260K-hf/model.safetensors")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	emb, ok := f.Info("model.embed_tokens.weight")
	if !ok || emb.DType != F32 || !slices.Equal(emb.Shape, []int{512, 64}) {
		t.Fatalf("embed_tokens = %+v, %v", emb, ok)
	}
	for l := range 5 {
		for _, p := range []string{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
			"self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"} {
			name := fmt.Sprintf("model.layers.%d.%s.weight", l, p)
			if ti, ok := f.Info(name); !ok || ti.DType != F32 || len(ti.Shape) != 2 {
				t.Errorf("%s = %+v, %v", name, ti, ok)
			}
		}
	}
	if _, ok := f.Info("model.layers.5.mlp.up_proj.weight"); ok {
		t.Error("a sixth layer")
	}
	if f.Metadata()["format"] != "pt" {
		t.Errorf("metadata = %v", f.Metadata())
	}
	vals, err := f.ReadFloat32("model.embed_tokens.weight")
	if err != nil || len(vals) != 512*64 {
		t.Fatalf("embed: %d values, %v", len(vals), err)
	}
	checkRewrite(t, f, path)
}

// checkRewrite copies every tensor with WriteRawFile in the original
// offset order and checks that each tensor reads back bit-identically.
// Whether the whole file is byte-identical depends on the writer that made
// the original, so it is only reported.
func checkRewrite(t *testing.T, f *File, orig string) {
	ts := f.Tensors()
	specs := make([]WriteSpec, len(ts))
	for i, ti := range ts {
		specs[i] = WriteSpec{Name: ti.Name, DType: ti.DType, Shape: ti.Shape}
	}
	out := filepath.Join(t.TempDir(), "copy.safetensors")
	err := WriteRawFile(out, specs, f.Metadata(), func(i int) ([]byte, error) { return f.ReadRaw(ts[i].Name) })
	if err != nil {
		t.Fatal(err)
	}
	g, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if len(g.Tensors()) != len(ts) {
		t.Fatalf("copy has %d tensors, want %d", len(g.Tensors()), len(ts))
	}
	for _, ti := range ts {
		a, _ := f.ReadRaw(ti.Name)
		b, err := g.ReadRaw(ti.Name)
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs after rewrite (%v)", ti.Name, err)
		}
		if gi, _ := g.Info(ti.Name); gi.DType != ti.DType || !slices.Equal(gi.Shape, ti.Shape) {
			t.Errorf("%s: header %+v, want %+v", ti.Name, gi, ti)
		}
	}
	x, _ := os.ReadFile(orig)
	y, _ := os.ReadFile(out)
	t.Logf("rewrite byte-identical to the original: %v", bytes.Equal(x, y))
}
