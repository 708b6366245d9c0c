// Package maskfile reads and writes masks.safetensors, the mask sidecar of
// every pruned output: one tensor per pruned matrix holding its keep-mask
// bit-packed (bit k = element k of the row-major out×in matrix, least
// significant bit first) and zstd-compressed, stored as a U8 tensor. The
// file is a valid safetensors file; the header metadata records the format,
// encoding and each matrix's shape.
package maskfile

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/unipruning/unipruning/model/safetensors"
	"github.com/unipruning/unipruning/prune"
)

// Format identifies the file layout in the metadata.
const (
	Format   = "unipruning-masks/1"
	Encoding = "bitpack-lsb+zstd"
)

// Writer accumulates compressed masks, then writes them in one file.
type Writer struct {
	enc   *zstd.Encoder
	names []string
	blobs map[string][]byte
	meta  map[string]string
}

// NewWriter starts an empty mask file.
func NewWriter(meta map[string]string) (*Writer, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return nil, err
	}
	md := map[string]string{"format": Format, "encoding": Encoding}
	for k, v := range meta {
		md[k] = v
	}
	return &Writer{enc: enc, blobs: map[string][]byte{}, meta: md}, nil
}

// Add records the mask of the named tensor.
func (w *Writer) Add(name string, m *prune.Mask) error {
	if _, dup := w.blobs[name]; dup {
		return fmt.Errorf("maskfile: mask %s added twice", name)
	}
	w.names = append(w.names, name)
	w.blobs[name] = w.enc.EncodeAll(pack(m), nil)
	w.meta["shape:"+name] = fmt.Sprintf("%d,%d", m.Out, m.In)
	return nil
}

// Write writes the file (atomically: temp file + rename).
func (w *Writer) Write(path string) error {
	names := append([]string(nil), w.names...)
	sort.Strings(names)
	specs := make([]safetensors.WriteSpec, len(names))
	for i, n := range names {
		specs[i] = safetensors.WriteSpec{Name: n, DType: safetensors.U8, Shape: []int{len(w.blobs[n])}}
	}
	return safetensors.WriteRawFile(path, specs, w.meta, func(i int) ([]byte, error) { return w.blobs[names[i]], nil })
}

// pack bit-packs a mask row-major, LSB first.
func pack(m *prune.Mask) []byte {
	n := m.Out * m.In
	b := make([]byte, (n+7)/8)
	k := 0
	for i := 0; i < m.Out; i++ {
		for j := 0; j < m.In; j++ {
			if m.Keep(i, j) {
				b[k>>3] |= 1 << (k & 7)
			}
			k++
		}
	}
	return b
}

// Read loads every mask of a mask file.
func Read(path string) (map[string]*prune.Mask, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	md := f.Metadata()
	if md["format"] != Format || md["encoding"] != Encoding {
		return nil, fmt.Errorf("%s: not a unipruning mask file (format %q, encoding %q)", path, md["format"], md["encoding"])
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	out := map[string]*prune.Mask{}
	for _, t := range f.Tensors() {
		m, err := readOne(f, dec, t.Name, md["shape:"+t.Name])
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, t.Name, err)
		}
		out[t.Name] = m
	}
	return out, nil
}

func readOne(f *safetensors.File, dec *zstd.Decoder, name, shape string) (*prune.Mask, error) {
	parts := strings.Split(shape, ",")
	if len(parts) != 2 {
		return nil, fmt.Errorf("missing or malformed shape %q", shape)
	}
	out, err1 := strconv.Atoi(parts[0])
	in, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || out <= 0 || in <= 0 {
		return nil, fmt.Errorf("malformed shape %q", shape)
	}
	raw, err := f.ReadRaw(name)
	if err != nil {
		return nil, err
	}
	bits, err := dec.DecodeAll(raw, nil)
	if err != nil {
		return nil, fmt.Errorf("corrupt mask data: %w", err)
	}
	if len(bits) != (out*in+7)/8 {
		return nil, fmt.Errorf("mask has %d bytes, shape %dx%d needs %d", len(bits), out, in, (out*in+7)/8)
	}
	m := prune.NewMask(out, in)
	for k := 0; k < out*in; k++ {
		if bits[k>>3]&(1<<(k&7)) != 0 {
			m.Set(k/in, k%in, true)
		}
	}
	return m, nil
}
