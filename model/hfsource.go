package model

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/unipruning/unipruning/model/compressed"
	"github.com/unipruning/unipruning/model/safetensors"
)

// hfSource adapts a safetensors set to Source. When config.json declares a
// compressed-tensors sparse format, every compressed weight (its shape,
// compressed, bitmask and row_offsets tensors) is presented as the dense
// "<module>.weight" it encodes, so the rest of the system reads a
// compressed directory like any other.
type hfSource struct {
	set    *safetensors.Set
	format string                      // compressed format, "" when the tensors are stored dense
	groups map[string]*compressedGroup // logical weight name → its stored parts
}

type compressedGroup struct {
	prefix string
	parts  map[string]safetensors.TensorInfo
	dtype  safetensors.DType
	shape  []int
}

func newHFSource(set *safetensors.Set, sp *compressed.SparsityConfig) (*hfSource, error) {
	h := &hfSource{set: set}
	if sp == nil || sp.Format == compressed.Dense {
		return h, nil
	}
	h.format, h.groups = sp.Format, map[string]*compressedGroup{}
	names := compressed.PartNames(sp.Format)
	for _, t := range set.Tensors() {
		prefix, ok := strings.CutSuffix(t.Name, ".compressed")
		if !ok {
			continue
		}
		g := &compressedGroup{prefix: prefix, parts: map[string]safetensors.TensorInfo{}, dtype: t.DType}
		for _, s := range names {
			info, ok := set.Info(prefix + "." + s)
			if !ok {
				return nil, fmt.Errorf("compressed weight %s has no %q tensor (format %s)", prefix, s, sp.Format)
			}
			g.parts[s] = info
		}
		raw, err := set.ReadRaw(prefix + ".shape")
		if err != nil {
			return nil, err
		}
		if g.parts["shape"].DType != safetensors.I64 || len(raw) != 16 {
			return nil, fmt.Errorf("compressed weight %s: shape tensor is %s %v, want 2 int64 values", prefix, g.parts["shape"].DType, g.parts["shape"].Shape)
		}
		rows, cols := int64(binary.LittleEndian.Uint64(raw)), int64(binary.LittleEndian.Uint64(raw[8:]))
		if rows <= 0 || cols <= 0 || rows > 1<<31 || cols > 1<<31 {
			return nil, fmt.Errorf("compressed weight %s: dense shape [%d %d] is not a positive 2-D shape", prefix, rows, cols)
		}
		g.shape = []int{int(rows), int(cols)}
		name := prefix + ".weight"
		if _, dup := set.Info(name); dup {
			return nil, fmt.Errorf("%s is stored both dense and compressed", name)
		}
		h.groups[name] = g
	}
	return h, nil
}

// isPart reports whether a stored tensor is part of a compressed weight.
func (h *hfSource) isPart(name string) bool {
	if h.groups == nil {
		return false
	}
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return false
	}
	g, ok := h.groups[name[:i]+".weight"]
	if !ok {
		return false
	}
	_, ok = g.parts[name[i+1:]]
	return ok
}

// storedTensor is one logical (dense) tensor of a shard file, for
// rewriting: compressed weights sit where their "compressed" part is.
type storedTensor struct {
	Name  string
	DType safetensors.DType
	Shape []int
	Raw   func() ([]byte, error) // the dense little-endian bytes
}

// fileTensors lists the logical tensors of one shard file in file order.
func (h *hfSource) fileTensors(file string) []storedTensor {
	f, _ := h.set.File(file)
	var out []storedTensor
	for _, t := range f.Tensors() {
		if h.isPart(t.Name) {
			if prefix, ok := strings.CutSuffix(t.Name, ".compressed"); ok {
				name := prefix + ".weight"
				g := h.groups[name]
				out = append(out, storedTensor{name, g.dtype, g.shape, func() ([]byte, error) { return h.denseRaw(g) }})
			}
			continue
		}
		name := t.Name
		out = append(out, storedTensor{name, t.DType, t.Shape, func() ([]byte, error) { return f.ReadRaw(name) }})
	}
	return out
}

// denseRaw decompresses a group into the weight's dense bytes.
func (h *hfSource) denseRaw(g *compressedGroup) ([]byte, error) {
	parts := map[string]compressed.Part{}
	for s, info := range g.parts {
		raw, err := h.set.ReadRaw(g.prefix + "." + s)
		if err != nil {
			return nil, err
		}
		parts[s] = compressed.Part{Suffix: s, DType: string(info.DType), Shape: info.Shape, Data: raw}
	}
	_, _, _, raw, err := compressed.Decompress(h.format, parts)
	if err != nil {
		return nil, fmt.Errorf("compressed weight %s: %w", g.prefix, err)
	}
	return raw, nil
}

func (h *hfSource) Tensors() []TensorMeta {
	var ts []TensorMeta
	for _, file := range h.set.Files() {
		for _, t := range h.fileTensors(file) {
			ts = append(ts, TensorMeta{Name: t.Name, Shape: t.Shape, DType: string(t.DType)})
		}
	}
	return ts
}

func (h *hfSource) ReadFloat32Into(name string, dst []float32) error {
	g, ok := h.groups[name]
	if !ok {
		return h.set.ReadFloat32Into(name, dst)
	}
	raw, err := h.denseRaw(g)
	if err != nil {
		return err
	}
	if len(raw) != len(dst)*g.dtype.Size() {
		return fmt.Errorf("tensor %s has %d values, destination %d", name, len(raw)/g.dtype.Size(), len(dst))
	}
	return safetensors.DecodeFloat32(g.dtype, raw, dst)
}

func (h *hfSource) Close() error { return h.set.Close() }
