package model

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/unipruning/unipruning/internal/atomicfile"
	"github.com/unipruning/unipruning/model/safetensors"
	"github.com/unipruning/unipruning/model/tokenizer"
)

// Modifier may change a tensor before it is written: it gets the tensor's
// canonical name and float32 values and returns whether it changed them.
// Tensors it leaves alone are copied byte for byte.
type Modifier func(name string, data []float32) (bool, error)

// SaveLike writes the checkpoint, with mod applied, into dir in the input's
// own layout: an HF directory keeps its shard files, index, dtypes,
// config.json (with the sparsity metadata of opt added) and tokenizer and
// generation files; a llama2.c model keeps its .bin name and gets its
// tokenizer copied beside it. dir must exist and be empty; use
// WriteDirAtomically around it so a failure leaves nothing behind. The
// Storage it returns is nil for llama2.c outputs.
func SaveLike(ck *Checkpoint, dir string, mod Modifier, opt SaveOptions) (*Storage, error) {
	var st *Storage
	var err error
	if ck.Format == FormatHF {
		st, err = saveHFLike(ck, dir, mod, opt)
	} else {
		if opt.Compress {
			return nil, fmt.Errorf("compressed output needs a Hugging Face model (%s is llama2.c)", ck.Path)
		}
		err = saveL2CLike(ck, dir, mod)
	}
	if err != nil {
		return nil, err
	}
	return st, copyTokenizer(ck, dir)
}

func saveL2CLike(ck *Checkpoint, dir string, mod Modifier) error {
	out := filepath.Join(dir, filepath.Base(ck.Path))
	if err := copyFile(ck.Path, out); err != nil {
		return err
	}
	f, err := os.OpenFile(out, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, name := range ck.l2c.sortedByOffset() {
		vals, err := ck.Read(name)
		if err != nil {
			return err
		}
		changed, err := mod(name, vals)
		if err != nil {
			return err
		}
		if changed {
			if _, err := f.WriteAt(float32Bytes(vals), ck.l2c.offsets[name]); err != nil {
				return err
			}
		}
	}
	return f.Sync()
}

func float32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// copyTokenizer puts the tokenizer's files beside the output when they are
// not there yet (llama2.c models, or an HF model given --tokenizer).
func copyTokenizer(ck *Checkpoint, dir string) error {
	if ck.TokenizerPath == "" {
		return nil
	}
	for _, src := range tokenizer.Files(ck.TokenizerPath) {
		dst := filepath.Join(dir, filepath.Base(src))
		if _, err := os.Stat(dst); err == nil {
			continue
		}
		if err := copyFile(src, dst); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// WriteDirAtomically builds an output directory in a temporary sibling and
// renames it into place only when write succeeded, so a failed run leaves
// nothing half-written. An existing dir is refused unless force is set, in
// which case it is replaced only after the new one is complete.
func WriteDirAtomically(dir string, force bool, write func(tmp string) error) error {
	if _, err := os.Stat(dir); err == nil && !force {
		return fmt.Errorf("output %s already exists (pass --force to replace it)", dir)
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	// A writer killed before its rename left its temporary behind; nothing
	// else uses this prefix, so it is garbage now.
	prefix := "." + filepath.Base(dir) + ".tmp-"
	if _, err := atomicfile.RemoveStale(parent, prefix); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := write(tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := atomicfile.SyncTree(tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if _, err := os.Stat(dir); err == nil {
		old := tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			os.RemoveAll(tmp)
			return err
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return atomicfile.SyncDir(parent)
}

// HFConfigJSON renders a transformers-compatible config.json for c.
func HFConfigJSON(c *Config) ([]byte, error) {
	arch := c.Arch
	if arch == "" || arch == "llama2c" || arch == "test" {
		arch = "LlamaForCausalLM"
	}
	modelType, ok := map[string]string{"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral",
		"Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3"}[arch]
	if !ok {
		return nil, fmt.Errorf("config: no config.json mapping for architecture %q", arch)
	}
	if c.QKNorm != (arch == "Qwen3ForCausalLM") {
		return nil, fmt.Errorf("config: %s cannot express qk_norm=%v", arch, c.QKNorm)
	}
	dtype := map[string]string{"BF16": "bfloat16", "F16": "float16"}[c.DType]
	if dtype == "" {
		dtype = "float32"
	}
	m := map[string]any{
		"architectures": []string{arch}, "model_type": modelType, "hidden_size": c.Dim,
		"intermediate_size": c.Hidden, "num_hidden_layers": c.Layers, "num_attention_heads": c.Heads,
		"num_key_value_heads": c.KVHeads, "head_dim": c.HeadDim, "vocab_size": c.Vocab,
		"max_position_embeddings": c.MaxSeq, "rms_norm_eps": c.NormEps, "rope_theta": c.RopeTheta,
		"tie_word_embeddings": c.TiedHead, "hidden_act": "silu", "bos_token_id": c.BOS,
		"eos_token_id": c.EOS, "torch_dtype": dtype, "mlp_bias": false,
	}
	switch arch {
	case "Qwen2ForCausalLM": // q/k/v always biased, o never: no attention_bias key
		if !c.QKVBias || c.OBias {
			return nil, fmt.Errorf("config: Qwen2 has q/k/v biases and no o_proj bias")
		}
		m["use_sliding_window"] = false
	default: // attention_bias biases all four projections
		if c.QKVBias != c.OBias {
			return nil, fmt.Errorf("config: %s biases q, k, v and o together (attention_bias)", arch)
		}
		m["attention_bias"] = c.OBias
		if arch == "Qwen3ForCausalLM" {
			m["use_sliding_window"] = false
		}
	}
	if c.SlidingWindow > 0 && arch != "MistralForCausalLM" {
		return nil, fmt.Errorf("config: a sliding window is only written for MistralForCausalLM")
	}
	if arch == "MistralForCausalLM" {
		// explicit null: transformers' MistralConfig would default to 4096
		m["sliding_window"] = nil
		if c.SlidingWindow > 0 {
			m["sliding_window"] = c.SlidingWindow
		}
	}
	if c.Scaling != nil {
		m["rope_scaling"] = map[string]any{"rope_type": c.Scaling.Type, "factor": c.Scaling.Factor,
			"low_freq_factor": c.Scaling.LowFreqFactor, "high_freq_factor": c.Scaling.HighFreqFactor,
			"original_max_position_embeddings": c.Scaling.OriginalMaxPositionEmbeddings}
	}
	return json.MarshalIndent(m, "", "  ")
}

// HFTensor is one tensor to write into a new HF checkpoint.
type HFTensor struct {
	Name  string
	Shape []int
	Fill  func(dst []float32) error
}

// SaveHF writes a new HF directory: config.json and the tensors as
// model.safetensors, or as numbered shards of at most shardBytes with an
// index when they do not fit in one (shardBytes ≤ 0: one file).
func SaveHF(dir string, c *Config, tensors []HFTensor, shardBytes int64) error {
	cfg, err := HFConfigJSON(c)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644); err != nil {
		return err
	}
	dt := safetensors.DType(c.DType)
	if c.DType == "" {
		dt = safetensors.F32
	}
	groups := shardGroups(tensors, int64(dt.Size()), shardBytes)
	weightMap := map[string]string{}
	var total int64
	for gi, g := range groups {
		name := "model.safetensors"
		if len(groups) > 1 {
			name = fmt.Sprintf("model-%05d-of-%05d.safetensors", gi+1, len(groups))
		}
		specs := make([]safetensors.WriteSpec, len(g))
		for i, t := range g {
			specs[i] = safetensors.WriteSpec{Name: t.Name, DType: dt, Shape: t.Shape}
			weightMap[t.Name] = name
			total += int64(elements(t.Shape)) * int64(dt.Size())
		}
		err := safetensors.WriteFile(filepath.Join(dir, name), specs, map[string]string{"format": "pt"},
			func(i int, dst []float32) error { return g[i].Fill(dst) })
		if err != nil {
			return err
		}
	}
	if len(groups) > 1 {
		return safetensors.WriteIndex(filepath.Join(dir, "model.safetensors.index.json"), weightMap, total)
	}
	return nil
}

func shardGroups(ts []HFTensor, elem, limit int64) [][]HFTensor {
	var groups [][]HFTensor
	var cur []HFTensor
	var size int64
	for _, t := range ts {
		b := int64(elements(t.Shape)) * elem
		if limit > 0 && len(cur) > 0 && size+b > limit {
			groups, cur, size = append(groups, cur), nil, 0
		}
		cur, size = append(cur, t), size+b
	}
	return append(groups, cur)
}

func elements(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// CanonicalOrder sorts tensor names the way HF checkpoints list them:
// embedding, layers in numeric order, final norm, head.
func CanonicalOrder(names []string) {
	key := func(n string) (int, int, string) {
		switch {
		case n == EmbedName:
			return 0, 0, n
		case strings.HasPrefix(n, "model.layers."):
			var l int
			fmt.Sscanf(strings.TrimPrefix(n, "model.layers."), "%d", &l)
			return 1, l, n
		case n == NormName:
			return 2, 0, n
		default:
			return 3, 0, n
		}
	}
	sort.Slice(names, func(i, j int) bool {
		a1, a2, a3 := key(names[i])
		b1, b2, b3 := key(names[j])
		if a1 != b1 {
			return a1 < b1
		}
		if a2 != b2 {
			return a2 < b2
		}
		return a3 < b3
	})
}

// InterleavedToHalf permutes the rows of a q or k projection (heads×hd
// rows of cols values) from llama2.c's interleaved RoPE pairs (2p, 2p+1) to
// Hugging Face's half rotation (p, p+hd/2): new row e·hd/2+p of a head is
// old row 2p+e.
func InterleavedToHalf(w []float32, heads, hd, cols int) []float32 {
	out := make([]float32, len(w))
	half := hd / 2
	for h := 0; h < heads; h++ {
		for p := 0; p < half; p++ {
			for e := 0; e < 2; e++ {
				src := (h*hd + 2*p + e) * cols
				dst := (h*hd + e*half + p) * cols
				copy(out[dst:dst+cols], w[src:src+cols])
			}
		}
	}
	return out
}

// ConvertToHF writes a llama2.c checkpoint as an HF LlamaForCausalLM
// directory: q and k rows permuted to the half-rotation RoPE layout, all
// other tensors unchanged, float32.
func ConvertToHF(ck *Checkpoint, dir string) error {
	if ck.Format != FormatLlama2C {
		return fmt.Errorf("convert: %s is already a Hugging Face model", ck.Path)
	}
	c := *ck.Config
	c.Arch, c.RopeInterleaved, c.DType = "LlamaForCausalLM", false, "F32"
	var names []string
	for _, t := range ck.Tensors() {
		names = append(names, t.Name)
	}
	CanonicalOrder(names)
	ts := make([]HFTensor, len(names))
	for i, name := range names {
		meta, _ := ck.Tensor(name)
		ts[i] = HFTensor{Name: name, Shape: meta.Shape, Fill: func(dst []float32) error {
			if err := ck.ReadInto(name, dst); err != nil {
				return err
			}
			if heads := qkHeads(&c, name); heads > 0 {
				copy(dst, InterleavedToHalf(dst, heads, c.HeadDim, c.Dim))
			}
			return nil
		}}
	}
	if err := SaveHF(dir, &c, ts, 0); err != nil {
		return err
	}
	return copyTokenizer(ck, dir)
}

// qkHeads returns the number of heads of a q or k projection, 0 otherwise.
func qkHeads(c *Config, name string) int {
	for l := 0; l < c.Layers; l++ {
		switch name {
		case Target{l, Q}.TensorName():
			return c.Heads
		case Target{l, K}.TensorName():
			return c.KVHeads
		}
	}
	return 0
}
