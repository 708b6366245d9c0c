package model

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
)

// llama2.c checkpoint layouts: the legacy "version 0" export (a 28-byte
// header of seven int32, then float32 arrays) and the "version 1" export
// (magic "ak42", 256-byte header, float32). Version 2 (int8) is rejected.
const (
	l2cMagic      = 0x616b3432
	l2cV1Header   = 256
	l2cV0Header   = 28
	l2cRopeTheta  = 10000
	l2cNormEps    = 1e-5
	maxLlama2CDim = 1 << 20
)

// TensorMeta describes one tensor of a checkpoint.
type TensorMeta struct {
	Name  string
	Shape []int
	DType string // "F32", "F16", "BF16", ...
}

// Elements is the number of values in the tensor.
func (t TensorMeta) Elements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// llama2cFile is a llama2.c checkpoint opened for reads by offset.
type llama2cFile struct {
	f       *os.File
	version int
	tensors []TensorMeta
	offsets map[string]int64 // byte offset of each tensor
}

// l2cHeader holds the seven int32 hyper-parameters of every version.
type l2cHeader struct {
	Dim, Hidden, Layers, Heads, KVHeads, Vocab, SeqLen int32
}

func openLlama2C(path string) (*llama2cFile, *Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	lf, cfg, err := parseLlama2C(f, st.Size())
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return lf, cfg, nil
}

func parseLlama2C(f *os.File, size int64) (*llama2cFile, *Config, error) {
	var head [l2cV1Header]byte
	n, err := f.ReadAt(head[:], 0)
	if err != nil && err != io.EOF {
		return nil, nil, err
	}
	if n < l2cV0Header {
		return nil, nil, fmt.Errorf("llama2.c checkpoint: file has %d bytes, shorter than the 28-byte header", n)
	}
	lf := &llama2cFile{f: f, offsets: map[string]int64{}}
	var h l2cHeader
	var shared bool
	var dataStart int64
	if binary.LittleEndian.Uint32(head[:4]) == l2cMagic {
		lf.version = int(binary.LittleEndian.Uint32(head[4:8]))
		if lf.version != 1 {
			return nil, nil, fmt.Errorf("llama2.c checkpoint version %d is not supported (only float32 versions 0 and 1)", lf.version)
		}
		if n < l2cV1Header {
			return nil, nil, fmt.Errorf("llama2.c v1 checkpoint: header truncated (%d bytes)", n)
		}
		readHeader(head[8:36], &h)
		shared = head[36] != 0
		dataStart = l2cV1Header
	} else {
		readHeader(head[:28], &h)
		shared = h.Vocab > 0
		if h.Vocab < 0 {
			h.Vocab = -h.Vocab
		}
		dataStart = l2cV0Header
	}
	cfg, err := l2cConfig(&h, shared)
	if err != nil {
		return nil, nil, err
	}
	end := lf.layout(cfg, dataStart)
	if end != size {
		return nil, nil, fmt.Errorf("llama2.c checkpoint: header (dim %d, hidden %d, layers %d, heads %d/%d, vocab %d, seq %d, shared head %v) needs %d bytes but the file has %d",
			h.Dim, h.Hidden, h.Layers, h.Heads, h.KVHeads, h.Vocab, h.SeqLen, shared, end, size)
	}
	return lf, cfg, nil
}

func readHeader(b []byte, h *l2cHeader) {
	v := make([]int32, 7)
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	*h = l2cHeader{v[0], v[1], v[2], v[3], v[4], v[5], v[6]}
}

func l2cConfig(h *l2cHeader, shared bool) (*Config, error) {
	for _, v := range []int32{h.Dim, h.Hidden, h.Layers, h.Heads, h.KVHeads, h.Vocab, h.SeqLen} {
		if v <= 0 || v > maxLlama2CDim {
			return nil, fmt.Errorf("llama2.c checkpoint: implausible header %+v (not a llama2.c file?)", *h)
		}
	}
	if h.Dim%h.Heads != 0 {
		return nil, fmt.Errorf("llama2.c checkpoint: dim %d is not a multiple of %d heads", h.Dim, h.Heads)
	}
	c := &Config{
		Arch: "llama2c", Dim: int(h.Dim), Hidden: int(h.Hidden), Layers: int(h.Layers),
		Heads: int(h.Heads), KVHeads: int(h.KVHeads), HeadDim: int(h.Dim / h.Heads),
		Vocab: int(h.Vocab), MaxSeq: int(h.SeqLen), NormEps: l2cNormEps, RopeTheta: l2cRopeTheta,
		RopeInterleaved: true, TiedHead: shared, BOS: 1, EOS: 2, DType: "F32",
	}
	return c, c.Validate()
}

// layout records every tensor's offset and returns the end of the data.
func (lf *llama2cFile) layout(c *Config, off int64) int64 {
	add := func(name string, shape ...int) {
		lf.tensors = append(lf.tensors, TensorMeta{Name: name, Shape: shape, DType: "F32"})
		lf.offsets[name] = off
		off += 4 * int64(TensorMeta{Shape: shape}.Elements())
	}
	perLayer := func(suffix string, shape ...int) {
		for l := 0; l < c.Layers; l++ {
			add(LayerTensor(l, suffix), shape...)
		}
	}
	target := func(m Matrix) {
		out, in := m.Shape(c)
		for l := 0; l < c.Layers; l++ {
			add(Target{l, m}.TensorName(), out, in)
		}
	}
	if lf.version == 1 {
		perLayer("input_layernorm.weight", c.Dim)
		perLayer("post_attention_layernorm.weight", c.Dim)
		add(NormName, c.Dim)
		add(EmbedName, c.Vocab, c.Dim)
	} else {
		add(EmbedName, c.Vocab, c.Dim)
		perLayer("input_layernorm.weight", c.Dim)
	}
	for _, m := range []Matrix{Q, K, V, O} {
		target(m)
	}
	if lf.version == 0 {
		perLayer("post_attention_layernorm.weight", c.Dim)
	}
	for _, m := range []Matrix{Gate, Down, Up} { // llama2.c order: w1, w2, w3
		target(m)
	}
	if lf.version == 0 {
		add(NormName, c.Dim)
		off += 2 * 4 * int64(c.MaxSeq*c.HeadDim/2) // legacy RoPE tables, unused
	}
	if !c.TiedHead {
		add(HeadName, c.Vocab, c.Dim)
	}
	return off
}

func (lf *llama2cFile) Tensors() []TensorMeta { return lf.tensors }

func (lf *llama2cFile) ReadFloat32Into(name string, dst []float32) error {
	off, ok := lf.offsets[name]
	if !ok {
		return fmt.Errorf("llama2.c checkpoint has no tensor %q", name)
	}
	buf := make([]byte, 4*len(dst))
	if _, err := lf.f.ReadAt(buf, off); err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
	}
	return nil
}

func (lf *llama2cFile) Close() error { return lf.f.Close() }

// sortedByOffset returns tensor names in file order (used when rewriting).
func (lf *llama2cFile) sortedByOffset() []string {
	names := make([]string, 0, len(lf.offsets))
	for n := range lf.offsets {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return lf.offsets[names[i]] < lf.offsets[names[j]] })
	return names
}
