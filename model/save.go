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

// hfSaver rewrites the shard files of an HF checkpoint one tensor at a
// time, counting zeros for the sparsity metadata as it goes.
type hfSaver struct {
	ck        *Checkpoint
	dir       string
	mod       Modifier
	opt       SaveOptions
	st        *Storage
	shapes    map[string][2]int // target weights: (out, in)
	stats     map[string]compressed.Stats
	global    sparseCounter
	weightMap map[string]string // stored tensor → file
	renamed   bool              // stored names differ from the input's
	vals      []float32
}

func saveHFLike(ck *Checkpoint, dir string, mod Modifier, opt SaveOptions) (*Storage, error) {
	s := &hfSaver{ck: ck, dir: dir, mod: mod, opt: opt, shapes: targetShapes(ck.Config),
		stats: map[string]compressed.Stats{}, weightMap: map[string]string{}, renamed: ck.hf.format != "",
		st: &Storage{Format: compressed.Dense, SparsityStructure: compressed.Structure(opt.N, opt.M)}}
	if opt.Compress {
		s.st.Format = compressed.FormatFor(s.st.SparsityStructure)
	}
	for _, file := range ck.hf.set.Files() {
		write := s.writeDense
		if opt.Compress {
			write = s.writeCompressed
		}
		if err := write(file); err != nil {
			return nil, err
		}
		fi, err := os.Stat(filepath.Join(dir, file))
		if err != nil {
			return nil, err
		}
		s.st.FilesBytes += fi.Size()
	}
	s.st.GlobalSparsity = s.global.value()
	if err := copyHFFiles(ck, dir, s.renamed); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(ck.Path, indexName)); err == nil && s.renamed {
		if err := safetensors.WriteIndex(filepath.Join(dir, indexName), s.weightMap, s.st.StoredBytes); err != nil {
			return nil, err
		}
	}
	return s.st, writeSparsityConfig(ck, dir, s.st, s.stats, s.shapes)
}

// prepare reads one tensor's dense bytes, applies the modifier and counts
// its zeros.
func (s *hfSaver) prepare(t storedTensor) ([]byte, error) {
	raw, err := t.Raw()
	if err != nil {
		return nil, err
	}
	s.st.DenseBytes += int64(len(raw))
	if !t.DType.IsFloat() {
		return raw, nil
	}
	n := len(raw) / t.DType.Size()
	if cap(s.vals) < n {
		s.vals = make([]float32, n)
	}
	v := s.vals[:n]
	if err := safetensors.DecodeFloat32(t.DType, raw, v); err != nil {
		return nil, err
	}
	changed, err := s.mod(t.Name, v)
	if err == nil && changed {
		err = safetensors.EncodeFloat32(t.DType, v, raw)
	}
	if err != nil {
		return nil, err
	}
	c := compressed.Count(raw, t.DType.Size())
	s.global.add(c)
	s.stats[t.Name] = c
	return raw, nil
}

// writeDense rewrites a shard with every tensor dense: sizes are known, so
// the header is the compact one the input had.
func (s *hfSaver) writeDense(file string) error {
	ts := s.ck.hf.fileTensors(file)
	specs := make([]safetensors.WriteSpec, len(ts))
	for i, t := range ts {
		specs[i] = safetensors.WriteSpec{Name: t.Name, DType: t.DType, Shape: t.Shape}
		s.weightMap[t.Name] = file
	}
	f, _ := s.ck.hf.set.File(file)
	return safetensors.WriteRawFile(filepath.Join(s.dir, file), specs, f.Metadata(), func(i int) ([]byte, error) {
		raw, err := s.prepare(ts[i])
		s.st.StoredBytes += int64(len(raw))
		return raw, err
	})
}

// writeCompressed rewrites a shard with every qualifying target weight in
// the compressed format; the stored sizes depend on the data, so the file
// is streamed with its header written last.
func (s *hfSaver) writeCompressed(file string) error {
	ts := s.ck.hf.fileTensors(file)
	var names []string
	for _, t := range ts {
		names = append(names, t.Name)
		if _, ok := s.shapes[t.Name]; ok {
			for _, p := range compressed.PartNames(s.st.Format) {
				names = append(names, compressed.Prefix(t.Name)+"."+p)
			}
		}
	}
	f, _ := s.ck.hf.set.File(file)
	meta := f.Metadata()
	w, err := safetensors.CreateStream(filepath.Join(s.dir, file), safetensors.HeaderBound(names, meta))
	if err != nil {
		return err
	}
	add := func(spec safetensors.WriteSpec, data []byte) error {
		s.weightMap[spec.Name] = file
		return w.Add(spec, data)
	}
	for _, t := range ts {
		raw, err := s.prepare(t)
		if err == nil {
			shape, target := s.shapes[t.Name]
			if target && t.DType.IsFloat() && qualifies(s.stats[t.Name], s.st.SparsityStructure, shape[1]) {
				err = addCompressed(add, s.st.Format, t, shape, raw)
				s.st.CompressedWeights++
				s.renamed = true
			} else {
				err = add(safetensors.WriteSpec{Name: t.Name, DType: t.DType, Shape: t.Shape}, raw)
			}
		}
		if err != nil {
			w.Abort()
			return err
		}
	}
	s.st.StoredBytes += w.Size()
	return w.Close(meta)
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
