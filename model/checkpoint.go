package model

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/unipruning/unipruning/model/compressed"
	"github.com/unipruning/unipruning/model/safetensors"
	"github.com/unipruning/unipruning/model/tokenizer"
)

// Format is the on-disk layout of a checkpoint.
type Format string

// Supported checkpoint formats.
const (
	FormatHF      Format = "hf"
	FormatLlama2C Format = "llama2c"
)

// Source gives access to a checkpoint's tensors by canonical name, one at a
// time, so a process can load only the layers it owns.
type Source interface {
	Tensors() []TensorMeta
	ReadFloat32Into(name string, dst []float32) error
	Close() error
}

// Checkpoint is an opened model: its configuration, its tensors (read
// lazily) and where its tokenizer is.
type Checkpoint struct {
	Path          string // the directory (HF) or .bin file (llama2.c)
	Format        Format
	Config        *Config
	TokenizerPath string // "" when none was found or given
	// Sparsity is the compressed-tensors sparsity_config of an HF
	// config.json (nil when there is none); its format says how the
	// target weights are stored.
	Sparsity *compressed.SparsityConfig
	src      Source
	hf       *hfSource // for HF: the original files, for rewriting
	l2c      *llama2cFile
	meta     map[string]TensorMeta
}

// Open opens a model: an HF directory (config.json + safetensors), a
// llama2.c .bin file, or a directory holding one llama2.c .bin model (as
// prune, extract and run write them). tokenizer names the tokenizer file
// where it does not sit beside the model ("" = look beside the model).
func Open(path, tokenizerPath string) (*Checkpoint, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if st.IsDir() {
		if path, err = modelInDir(path); err != nil {
			return nil, err
		}
		st, err = os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
	}
	var ck *Checkpoint
	if st.IsDir() {
		ck, err = openHF(path)
	} else {
		ck, err = openL2C(path)
	}
	if err != nil {
		return nil, err
	}
	ck.meta = map[string]TensorMeta{}
	for _, t := range ck.src.Tensors() {
		ck.meta[t.Name] = t
	}
	if err := ck.checkTensors(); err != nil {
		ck.Close()
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	ck.TokenizerPath = tokenizerPath
	if tokenizerPath == "" {
		ck.TokenizerPath = findTokenizer(ck)
	}
	return ck, nil
}

// modelInDir resolves a directory to the model it holds: itself when it
// has config.json (HF), else its one llama2.c .bin that is not a tokenizer.
func modelInDir(dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
		return dir, nil
	}
	bins, _ := filepath.Glob(filepath.Join(dir, "*.bin"))
	var models []string
	for _, b := range bins {
		if n := filepath.Base(b); n != "tokenizer.bin" && !strings.HasPrefix(n, "tok") {
			models = append(models, b)
		}
	}
	switch len(models) {
	case 1:
		return models[0], nil
	case 0:
		return "", fmt.Errorf("model: %s has neither config.json (a Hugging Face model) nor a llama2.c .bin model", dir)
	}
	return "", fmt.Errorf("model: %s holds several llama2.c models (%s): name one", dir, strings.Join(models, ", "))
}

func openHF(dir string) (*Checkpoint, error) {
	path := filepath.Join(dir, "config.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	cfg, err := ParseHFConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("model: %s: %w", path, err)
	}
	sp, err := compressed.ReadConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("model: %s: %w", path, err)
	}
	set, err := safetensors.OpenSet(dir)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	src, err := newHFSource(set, sp)
	if err != nil {
		set.Close()
		return nil, fmt.Errorf("model: %s: %w", dir, err)
	}
	return &Checkpoint{Path: dir, Format: FormatHF, Config: cfg, Sparsity: sp, src: src, hf: src}, nil
}

func openL2C(path string) (*Checkpoint, error) {
	if strings.HasSuffix(path, ".safetensors") || filepath.Base(path) == "config.json" {
		return nil, fmt.Errorf("model: %s: pass the Hugging Face model directory, not one of its files", path)
	}
	lf, cfg, err := openLlama2C(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return &Checkpoint{Path: path, Format: FormatLlama2C, Config: cfg, src: lf, l2c: lf}, nil
}

// findTokenizer looks for a tokenizer beside the model: tokenizer.model or
// tokenizer.json, then llama2.c-style tokenizer.bin / tok<vocab>.bin (which
// an output directory of a llama2.c model carries), then any tok*.bin.
func findTokenizer(ck *Checkpoint) string {
	dir := ck.Path
	if ck.Format == FormatLlama2C {
		dir = filepath.Dir(ck.Path)
	}
	if p, ok := tokenizer.FindInDir(dir); ok {
		return p
	}
	for _, n := range []string{"tokenizer.bin", fmt.Sprintf("tok%d.bin", ck.Config.Vocab)} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			return filepath.Join(dir, n)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "tok*.bin")); len(m) == 1 {
		return m[0]
	}
	return ""
}

// checkTensors verifies that every tensor the architecture needs is present
// with the right shape, so a bad checkpoint fails at open, not mid-run.
func (ck *Checkpoint) checkTensors() error {
	c := ck.Config
	want := map[string][]int{EmbedName: {c.Vocab, c.Dim}, NormName: {c.Dim}}
	if !c.TiedHead {
		want[HeadName] = []int{c.Vocab, c.Dim}
	}
	for l := 0; l < c.Layers; l++ {
		want[AttnNormName(l)] = []int{c.Dim}
		want[MLPNormName(l)] = []int{c.Dim}
		if c.QKNorm {
			want[QNormName(l)] = []int{c.HeadDim}
			want[KNormName(l)] = []int{c.HeadDim}
		}
		for m := Matrix(0); m < NumMatrices; m++ {
			out, in := m.Shape(c)
			want[Target{l, m}.TensorName()] = []int{out, in}
			if c.HasBias(m) {
				want[Target{l, m}.BiasName()] = []int{out}
			}
		}
	}
	var missing []string
	for name, shape := range want {
		t, ok := ck.meta[name]
		if !ok {
			missing = append(missing, name)
			continue
		}
		if !sameShape(t.Shape, shape) {
			return fmt.Errorf("tensor %s has shape %v, the config implies %v", name, t.Shape, shape)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		if len(missing) > 5 {
			missing = append(missing[:5], fmt.Sprintf("... (%d in all)", len(missing)))
		}
		return fmt.Errorf("missing tensors: %s", strings.Join(missing, ", "))
	}
	return nil
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Tensor returns a tensor's metadata.
func (ck *Checkpoint) Tensor(name string) (TensorMeta, bool) {
	t, ok := ck.meta[name]
	return t, ok
}

// Tensors lists all tensors of the checkpoint.
func (ck *Checkpoint) Tensors() []TensorMeta { return ck.src.Tensors() }

// Read returns a tensor as float32.
func (ck *Checkpoint) Read(name string) ([]float32, error) {
	t, ok := ck.meta[name]
	if !ok {
		return nil, fmt.Errorf("model has no tensor %q", name)
	}
	dst := make([]float32, t.Elements())
	return dst, ck.src.ReadFloat32Into(name, dst)
}

// ReadInto reads a tensor into dst, whose length must match.
func (ck *Checkpoint) ReadInto(name string, dst []float32) error {
	t, ok := ck.meta[name]
	if !ok {
		return fmt.Errorf("model has no tensor %q", name)
	}
	if t.Elements() != len(dst) {
		return fmt.Errorf("tensor %s has %d values, destination %d", name, t.Elements(), len(dst))
	}
	return ck.src.ReadFloat32Into(name, dst)
}

// LoadTokenizer loads the checkpoint's tokenizer and checks it fits the
// model: every id must have an embedding row, so a tokenizer with more ids
// than the config's vocab_size is an error. Fewer is normal for Hugging
// Face byte-level BPE models (embeddings padded: Qwen2.5 has 151,665
// tokens for vocab_size 151,936), but llama2.c and SentencePiece
// vocabularies are the model's, so there the sizes must be equal.
func (ck *Checkpoint) LoadTokenizer() (tokenizer.Tokenizer, error) {
	if ck.TokenizerPath == "" {
		return nil, errors.New("no tokenizer found beside the model: pass --tokenizer FILE")
	}
	tok, err := tokenizer.Load(ck.TokenizerPath)
	if err != nil {
		return nil, err
	}
	n, v := tok.VocabSize(), ck.Config.Vocab
	switch {
	case n > v:
		return nil, fmt.Errorf("tokenizer %s has %d tokens but the model's vocab_size is %d: ids from %d on have no embedding (wrong tokenizer or config?)", ck.TokenizerPath, n, v, v)
	case n < v && (tok.Kind() == "llama2c" || tok.Kind() == "sentencepiece"):
		return nil, fmt.Errorf("tokenizer %s has %d tokens but the model's vocabulary is %d", ck.TokenizerPath, n, v)
	}
	return tok, nil
}

// Close releases the files.
func (ck *Checkpoint) Close() error { return ck.src.Close() }
