package model_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/unipruning/unipruning/internal/shareddata"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/model/compressed"
	"github.com/unipruning/unipruning/model/safetensors"
	"github.com/unipruning/unipruning/model/synth"
)

// synthDir writes a random model of arch in dtype, split into shards of
// at most shardBytes (0: one file), with a generation config and a
// tokenizer-like file to be copied.
func synthDir(t *testing.T, arch, dtype string, tied bool, shardBytes int64) string {
	t.Helper()
	c := &model.Config{Layers: 2, Dim: 32, Hidden: 48, Heads: 4, KVHeads: 2, HeadDim: 8, Vocab: 64, MaxSeq: 32,
		NormEps: 1e-6, RopeTheta: 1e4, BOS: 1, EOS: 2, DType: dtype, TiedHead: tied}
	if err := synth.Configure(c, arch); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := model.SaveHF(dir, c, synth.Tensors(c, 9), shardBytes); err != nil {
		t.Fatal(err)
	}
	if err := synth.WriteGenerationConfig(dir, c); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{"eos_token": null}`), 0o644)
	return dir
}

// prune2of4 zeroes the 2 smallest |w| of every group of 4 of the target
// weights; pruneHalf zeroes every second weight. Other tensors stay.
func prune2of4(ck *model.Checkpoint) model.Modifier {
	targets := map[string]bool{}
	for _, tg := range model.Targets(ck.Config) {
		targets[tg.TensorName()] = true
	}
	return func(name string, w []float32) (bool, error) {
		if !targets[name] {
			return false, nil
		}
		for g := 0; g+4 <= len(w); g += 4 {
			idx := []int{g, g + 1, g + 2, g + 3}
			sort.SliceStable(idx, func(a, b int) bool { return math.Abs(float64(w[idx[a]])) < math.Abs(float64(w[idx[b]])) })
			w[idx[0]], w[idx[1]] = 0, 0
		}
		return true, nil
	}
}

func pruneHalf(ck *model.Checkpoint, skip string) model.Modifier {
	targets := map[string]bool{}
	for _, tg := range model.Targets(ck.Config) {
		targets[tg.TensorName()] = tg.TensorName() != skip
	}
	return func(name string, w []float32) (bool, error) {
		if !targets[name] {
			return false, nil
		}
		for i := 0; i < len(w); i += 2 {
			w[i] = 0
		}
		return true, nil
	}
}

func save(t *testing.T, in string, mod func(*model.Checkpoint) model.Modifier, opt model.SaveOptions) (string, *model.Storage) {
	t.Helper()
	ck, err := model.Open(in, "")
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	out := filepath.Join(t.TempDir(), "out")
	var st *model.Storage
	err = model.WriteDirAtomically(out, false, func(tmp string) error {
		var err error
		st, err = model.SaveLike(ck, tmp, mod(ck), opt)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, st
}

// sameWeights checks that two model directories hold the same logical
// tensors: names, shapes, dtypes and bit-identical values.
func sameWeights(t *testing.T, a, b string) {
	t.Helper()
	ca, err := model.Open(a, "")
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cb, err := model.Open(b, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	ta, tb := ca.Tensors(), cb.Tensors()
	sort.Slice(ta, func(i, j int) bool { return ta[i].Name < ta[j].Name })
	sort.Slice(tb, func(i, j int) bool { return tb[i].Name < tb[j].Name })
	if len(ta) != len(tb) {
		t.Fatalf("%d tensors vs %d", len(ta), len(tb))
	}
	for i := range ta {
		if ta[i].Name != tb[i].Name || ta[i].DType != tb[i].DType || !slices.Equal(ta[i].Shape, tb[i].Shape) {
			t.Fatalf("tensor %+v vs %+v", ta[i], tb[i])
		}
		va, _ := ca.Read(ta[i].Name)
		vb, err := cb.Read(tb[i].Name)
		if err != nil {
			t.Fatal(err)
		}
		for j := range va {
			if math.Float32bits(va[j]) != math.Float32bits(vb[j]) {
				t.Fatalf("%s[%d]: %v vs %v", ta[i].Name, j, va[j], vb[j])
			}
		}
	}
}

func sparsityConfig(t *testing.T, dir string) *compressed.SparsityConfig {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	sp, err := compressed.ReadConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// TestCompressedRoundTrip: for 2:4 and 50% unstructured outputs of bf16
// and f16 models (sharded, Qwen3 with q/k norms, Qwen2 with biases), the
// compressed output read back gives exactly the dense output's weights, in
// the input's dtype; config.json, the index and the copied files are as
// compressed-tensors and transformers expect.
func TestCompressedRoundTrip(t *testing.T) {
	cases := []struct {
		arch, dtype string
		tied        bool
		shard       int64
		nm          bool
	}{
		{"llama", "BF16", true, 8 << 10, true},
		{"llama", "BF16", false, 8 << 10, false},
		{"qwen3", "BF16", false, 0, true},
		{"qwen2", "F16", true, 0, false},
	}
	for _, c := range cases {
		in := synthDir(t, c.arch, c.dtype, c.tied, c.shard)
		mod, opt := prune2of4, model.SaveOptions{N: 2, M: 4}
		if !c.nm {
			mod, opt = func(ck *model.Checkpoint) model.Modifier { return pruneHalf(ck, "") }, model.SaveOptions{}
		}
		dense, dst := save(t, in, mod, opt)
		opt.Compress = true
		comp, cst := save(t, in, mod, opt)
		sameWeights(t, dense, comp)
		ck, _ := model.Open(comp, "")
		for _, tn := range ck.Tensors() {
			if tn.DType != c.dtype {
				t.Errorf("%s %s: %s stored as %s", c.arch, c.dtype, tn.Name, tn.DType)
			}
		}
		ck.Close()
		want := compressed.Sparse24Bitmask
		if !c.nm {
			want = compressed.SparseBitmask
		}
		ds, cs := sparsityConfig(t, dense), sparsityConfig(t, comp)
		if ds.Format != compressed.Dense || cs.Format != want || !slices.Equal(cs.Targets, []string{"Linear"}) ||
			!slices.Equal(cs.Ignore, []string{"lm_head"}) || ds.GlobalSparsity != cs.GlobalSparsity || cs.GlobalSparsity <= 0.3 {
			t.Errorf("%s: sparsity configs %+v / %+v", c.arch, ds, cs)
		}
		if cst.CompressedWeights != 14 || dst.CompressedWeights != 0 || cst.DenseBytes != dst.DenseBytes ||
			dst.StoredBytes != dst.DenseBytes || !(cst.StoredBytes < dst.StoredBytes) {
			t.Errorf("%s: storage %+v / %+v", c.arch, dst, cst)
		}
		var files int64
		ms, _ := filepath.Glob(filepath.Join(comp, "*.safetensors"))
		for _, m := range ms {
			fi, _ := os.Stat(m)
			files += fi.Size()
		}
		if files != cst.FilesBytes {
			t.Errorf("files %d bytes, storage says %d", files, cst.FilesBytes)
		}
		for _, f := range []string{"generation_config.json", "tokenizer_config.json"} {
			if _, err := os.Stat(filepath.Join(comp, f)); err != nil {
				t.Errorf("%s not copied: %v", f, err)
			}
		}
		if c.shard > 0 {
			checkIndex(t, comp, len(ms))
		}
		// A compressed directory saved again dense is the dense output.
		again, _ := save(t, comp, func(*model.Checkpoint) model.Modifier {
			return func(string, []float32) (bool, error) { return false, nil }
		}, model.SaveOptions{N: opt.N, M: opt.M})
		sameWeights(t, again, dense)
		if sp := sparsityConfig(t, again); sp.Format != compressed.Dense {
			t.Errorf("re-saved dense output says %s", sp.Format)
		}
	}
}

// checkIndex: the rewritten index maps every stored tensor to the file
// that holds it and totals their data.
func checkIndex(t *testing.T, dir string, files int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Metadata  map[string]int64  `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	json.Unmarshal(b, &idx)
	var total int64
	seen := map[string]bool{}
	ms, _ := filepath.Glob(filepath.Join(dir, "model-*.safetensors"))
	if len(ms) != files || files < 2 {
		t.Fatalf("%d shard files", len(ms))
	}
	for _, m := range ms {
		f, err := safetensors.Open(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, tn := range f.Tensors() {
			if idx.WeightMap[tn.Name] != filepath.Base(m) {
				t.Errorf("index maps %s to %q, it is in %s", tn.Name, idx.WeightMap[tn.Name], filepath.Base(m))
			}
			seen[tn.Name] = true
			total += tn.NumBytes()
		}
		f.Close()
	}
	if len(seen) != len(idx.WeightMap) || idx.Metadata["total_size"] != total {
		t.Errorf("index: %d names for %d tensors, total_size %d for %d", len(idx.WeightMap), len(seen), idx.Metadata["total_size"], total)
	}
	if !seen["model.layers.0.mlp.down_proj.bitmask"] {
		t.Error("no compressed parts in the shards")
	}
}

// TestSparsityTargetsIgnore: a target matrix left dense is named in ignore
// and stored dense; lm_head is always ignored.
func TestSparsityTargetsIgnore(t *testing.T) {
	in := synthDir(t, "llama", "BF16", true, 0)
	skip := model.Target{Layer: 1, Matrix: model.V}.TensorName()
	out, st := save(t, in, func(ck *model.Checkpoint) model.Modifier { return pruneHalf(ck, skip) }, model.SaveOptions{Compress: true})
	if want := []string{"model.layers.1.self_attn.v_proj", "lm_head"}; !slices.Equal(st.Ignore, want) || st.CompressedWeights != 13 {
		t.Errorf("ignore %v (want %v), %d compressed", st.Ignore, want, st.CompressedWeights)
	}
	f, err := safetensors.Open(filepath.Join(out, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := f.Info(skip); !ok {
		t.Errorf("%s is not stored dense", skip)
	}
	if _, ok := f.Info(strings.TrimSuffix(skip, ".weight") + ".compressed"); ok {
		t.Errorf("%s is stored compressed", skip)
	}
	// Nothing pruned: no sparsity metadata at all, as llm-compressor.
	none, _ := save(t, in, func(*model.Checkpoint) model.Modifier {
		return func(string, []float32) (bool, error) { return false, nil }
	}, model.SaveOptions{})
	if sp := sparsityConfig(t, none); sp != nil {
		t.Errorf("dense model got %+v", sp)
	}
}

// TestCompressedReaderErrors: a compressed directory with a missing part
// or an inconsistent one is refused clearly.
func TestCompressedReaderErrors(t *testing.T) {
	in := synthDir(t, "llama", "BF16", true, 0)
	out, _ := save(t, in, prune2of4, model.SaveOptions{N: 2, M: 4, Compress: true})
	f, err := safetensors.Open(filepath.Join(out, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	var specs []safetensors.WriteSpec
	var data [][]byte
	for _, tn := range f.Tensors() {
		if tn.Name == "model.layers.0.mlp.up_proj.bitmask" {
			continue
		}
		raw, _ := f.ReadRaw(tn.Name)
		specs, data = append(specs, safetensors.WriteSpec{Name: tn.Name, DType: tn.DType, Shape: tn.Shape}), append(data, raw)
	}
	f.Close()
	if err := safetensors.WriteRawFile(filepath.Join(out, "model.safetensors"), specs, nil, func(i int) ([]byte, error) { return data[i], nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := model.Open(out, ""); err == nil || !strings.Contains(err.Error(), `up_proj has no "bitmask"`) {
		t.Errorf("missing bitmask: %v", err)
	}
	// llama2.c models cannot be written compressed.
	ck, err := model.Open(shareddata.Path(t, "models/stories260K/stories260K.bin"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	_, err = model.SaveLike(ck, t.TempDir(), func(string, []float32) (bool, error) { return false, nil }, model.SaveOptions{Compress: true})
	if err == nil || !strings.Contains(err.Error(), "Hugging Face") {
		t.Errorf("llama2.c compressed: %v", err)
	}
}
