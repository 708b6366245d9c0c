package model

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/unipruning/unipruning/model/compressed"
	"github.com/unipruning/unipruning/model/safetensors"
)

// SaveOptions says how an HF output records and stores its sparsity.
type SaveOptions struct {
	// N, M is the N:M pattern the targets were pruned to (0, 0:
	// unstructured). It decides config.json's sparsity_structure and the
	// compressed format.
	N, M int
	// Compress stores every qualifying target weight in compressed-tensors'
	// format for the structure (sparse-24-bitmask for 2:4, sparse-bitmask
	// otherwise) instead of dense.
	Compress bool
}

// Storage describes how an HF output's weights were stored and what they
// take on disk.
type Storage struct {
	Format            string   `json:"format"`             // dense, sparse-bitmask or sparse-24-bitmask
	SparsityStructure string   `json:"sparsity_structure"` // 2:4 or unstructured
	GlobalSparsity    float64  `json:"global_sparsity"`    // zeros over all parameters (llm-compressor's definition)
	Targets           []string `json:"targets,omitempty"`  // sparsity_config targets and ignore, as written
	Ignore            []string `json:"ignore,omitempty"`
	CompressedWeights int      `json:"compressed_weights"` // weights stored compressed
	DenseBytes        int64    `json:"dense_bytes"`        // tensor data if every tensor were stored dense
	StoredBytes       int64    `json:"stored_bytes"`       // tensor data as written
	FilesBytes        int64    `json:"files_bytes"`        // the .safetensors files (headers included)
}

// Ratio is the stored tensor data relative to dense.
func (s *Storage) Ratio() float64 {
	if s.DenseBytes == 0 {
		return 1
	}
	return float64(s.StoredBytes) / float64(s.DenseBytes)
}

const indexName = "model.safetensors.index.json"

// targetShape identifies a prunable weight by its canonical name.
func targetShapes(c *Config) map[string][2]int {
	m := map[string][2]int{}
	for _, t := range Targets(c) {
		o, i := t.Matrix.Shape(c)
		m[t.TensorName()] = [2]int{o, i}
	}
	return m
}

// sparseCounter accumulates global_sparsity as llm-compressor's
// ModuleSparsificationInfo computes it: per tensor round(float32 zero
// fraction × numel), summed, over the total.
type sparseCounter struct {
	sparse float64
	total  int64
}

func (s *sparseCounter) add(st compressed.Stats) {
	s.sparse += math.RoundToEven(float64(st.Sparsity()) * float64(st.Numel))
	s.total += st.Numel
}

func (s *sparseCounter) value() float64 {
	if s.total == 0 {
		return 0
	}
	return s.sparse / float64(s.total)
}

func saveHFLike(ck *Checkpoint, dir string, mod Modifier, opt SaveOptions) (*Storage, error) {
	c := ck.Config
	structure := compressed.Structure(opt.N, opt.M)
	st := &Storage{Format: compressed.Dense, SparsityStructure: structure}
	if opt.Compress {
		st.Format = compressed.FormatFor(structure)
	}
	shapes := targetShapes(c)
	stats := map[string]compressed.Stats{}
	var global sparseCounter
	weightMap := map[string]string{}
	renamed := ck.hf.format != ""
	var vals []float32
	for _, file := range ck.hf.set.Files() {
		ts := ck.hf.fileTensors(file)
		var names []string
		for _, t := range ts {
			names = append(names, t.Name)
			if _, ok := shapes[t.Name]; ok && opt.Compress {
				for _, s := range compressed.PartNames(st.Format) {
					names = append(names, compressed.Prefix(t.Name)+"."+s)
				}
			}
		}
		f, _ := ck.hf.set.File(file)
		meta := f.Metadata()
		out := filepath.Join(dir, file)
		w, err := safetensors.CreateStream(out, safetensors.HeaderBound(names, meta))
		if err != nil {
			return nil, err
		}
		add := func(spec safetensors.WriteSpec, data []byte) error {
			weightMap[spec.Name] = file
			return w.Add(spec, data)
		}
		for _, t := range ts {
			raw, err := t.Raw()
			if err != nil {
				w.Abort()
				return nil, err
			}
			st.DenseBytes += int64(len(raw))
			if !t.DType.IsFloat() {
				if err := add(safetensors.WriteSpec{Name: t.Name, DType: t.DType, Shape: t.Shape}, raw); err != nil {
					w.Abort()
					return nil, err
				}
				continue
			}
			n := len(raw) / t.DType.Size()
			if cap(vals) < n {
				vals = make([]float32, n)
			}
			v := vals[:n]
			if err := safetensors.DecodeFloat32(t.DType, raw, v); err != nil {
				w.Abort()
				return nil, err
			}
			changed, err := mod(t.Name, v)
			if err == nil && changed {
				err = safetensors.EncodeFloat32(t.DType, v, raw)
			}
			if err != nil {
				w.Abort()
				return nil, err
			}
			s := compressed.Count(raw, t.DType.Size())
			global.add(s)
			stats[t.Name] = s
			shape, target := shapes[t.Name]
			if !opt.Compress || !target || !qualifies(s, structure, shape[1]) {
				err = add(safetensors.WriteSpec{Name: t.Name, DType: t.DType, Shape: t.Shape}, raw)
			} else {
				err = addCompressed(add, st.Format, t, shape, raw)
				st.CompressedWeights++
				renamed = true
			}
			if err != nil {
				w.Abort()
				return nil, err
			}
		}
		st.StoredBytes += w.Size()
		if err := w.Close(meta); err != nil {
			return nil, err
		}
		fi, err := os.Stat(out)
		if err != nil {
			return nil, err
		}
		st.FilesBytes += fi.Size()
	}
	st.GlobalSparsity = global.value()
	if err := copyHFFiles(ck, dir, renamed); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(ck.Path, indexName)); err == nil && renamed {
		if err := safetensors.WriteIndex(filepath.Join(dir, indexName), weightMap, st.StoredBytes); err != nil {
			return nil, err
		}
	}
	return st, writeSparsityConfig(ck, dir, st, stats, shapes)
}

// qualifies is compressed.Stats.Qualifies for a weight of width cols;
// sparse-24-bitmask also needs groups of 4 within rows (a matrix whose
// width is not a multiple of 4 stays dense, as N:M pruning leaves it).
func qualifies(s compressed.Stats, structure string, cols int) bool {
	return s.Qualifies(structure) && (structure != compressed.TwoFour || cols%4 == 0)
}

func addCompressed(add func(safetensors.WriteSpec, []byte) error, format string, t storedTensor, shape [2]int, raw []byte) error {
	parts, err := compressed.Compress(format, string(t.DType), shape[0], shape[1], raw)
	if err != nil {
		return fmt.Errorf("%s: %w", t.Name, err)
	}
	prefix := compressed.Prefix(t.Name)
	for _, p := range parts {
		if err := add(safetensors.WriteSpec{Name: prefix + "." + p.Suffix, DType: safetensors.DType(p.DType), Shape: p.Shape}, p.Data); err != nil {
			return err
		}
	}
	return nil
}

// copyHFFiles copies every other regular file of the input (tokenizer,
// generation config, …) except config.json, written with the sparsity
// metadata, and the index when tensor names changed (rewritten).
func copyHFFiles(ck *Checkpoint, dir string, renamed bool) error {
	entries, err := os.ReadDir(ck.Path)
	if err != nil {
		return err
	}
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() || strings.HasSuffix(n, ".safetensors") || n == "config.json" || (n == indexName && renamed) {
			continue
		}
		if err := copyFile(filepath.Join(ck.Path, n), filepath.Join(dir, n)); err != nil {
			return err
		}
	}
	return nil
}

// writeSparsityConfig writes config.json with compressed-tensors'
// quantization_config describing the output's sparsity (see package
// compressed for the definitions followed).
func writeSparsityConfig(ck *Checkpoint, dir string, st *Storage, stats map[string]compressed.Stats, shapes map[string][2]int) error {
	raw, err := os.ReadFile(filepath.Join(ck.Path, "config.json"))
	if err != nil {
		return err
	}
	var linear []compressed.Module
	for _, t := range Targets(ck.Config) {
		name := t.TensorName()
		linear = append(linear, compressed.Module{Name: compressed.Prefix(name), Qualifies: qualifies(stats[name], st.SparsityStructure, shapes[name][1])})
	}
	head := HeadName
	if ck.Config.TiedHead {
		head = EmbedName // lm_head's weight is the embedding
	}
	hs, ok := stats[head]
	linear = append(linear, compressed.Module{Name: "lm_head", Qualifies: ok && hs.Qualifies(st.SparsityStructure)})
	st.Targets, st.Ignore = compressed.TargetsAndIgnore(linear)
	var q *compressed.QuantizationConfig
	if st.Targets != nil { // llm-compressor writes no sparsity config when nothing is sparse
		if st.Ignore == nil {
			st.Ignore = []string{}
		}
		q = compressed.NewQuantizationConfig(&compressed.SparsityConfig{Format: st.Format, GlobalSparsity: st.GlobalSparsity,
			Ignore: st.Ignore, SparsityStructure: st.SparsityStructure, Targets: st.Targets})
	}
	out, err := compressed.WriteConfig(raw, q)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), out, 0o644)
}
