package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
)

// WriteSpec describes one tensor to write.
type WriteSpec struct {
	Name  string
	DType DType
	Shape []int
}

// layout is a validated write plan: specs with their byte ranges.
type layout struct {
	specs    []WriteSpec
	begin    []int64
	size     []int64
	maxElems int
}

// planLayout validates specs and lays their data out contiguously in the
// given order.
func planLayout(specs []WriteSpec) (*layout, error) {
	l := &layout{specs: specs, begin: make([]int64, len(specs)), size: make([]int64, len(specs))}
	seen := make(map[string]struct{}, len(specs))
	var off int64
	for i, s := range specs {
		if err := checkSpec(s, seen); err != nil {
			return nil, err
		}
		size, err := byteSize(s.DType, s.Shape)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", s.Name, err)
		}
		if off+size < off {
			return nil, errors.New("total data size overflows int64")
		}
		l.begin[i], l.size[i] = off, size
		off += size
		n, _ := numElements(s.Shape) // cannot fail once byteSize succeeded
		l.maxElems = max(l.maxElems, n)
	}
	return l, nil
}

func checkSpec(s WriteSpec, seen map[string]struct{}) error {
	if s.Name == metadataKey {
		return fmt.Errorf("tensor name %q is reserved for metadata", s.Name)
	}
	if _, dup := seen[s.Name]; dup {
		return fmt.Errorf("duplicate tensor name %q", s.Name)
	}
	seen[s.Name] = struct{}{}
	if !s.DType.Valid() {
		return fmt.Errorf("tensor %q: unknown dtype %q", s.Name, s.DType)
	}
	for _, d := range s.Shape {
		if d < 0 {
			return fmt.Errorf("tensor %q: shape %v has a negative dimension", s.Name, s.Shape)
		}
	}
	return nil
}

// headerBytes renders the header: compact JSON, "__metadata__" first, then
// tensors by name with fields in the reference order, padded with spaces
// so that 8+len is a multiple of 8 and the data section is aligned.
func (l *layout) headerBytes(metadata map[string]string) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	sep := func() {
		if !first {
			b.WriteByte(',')
		}
		first = false
	}
	if len(metadata) > 0 {
		sep()
		writeJSONString(&b, metadataKey)
		b.WriteString(":{")
		for i, k := range slices.Sorted(maps.Keys(metadata)) {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(&b, k)
			b.WriteByte(':')
			writeJSONString(&b, metadata[k])
		}
		b.WriteByte('}')
	}
	order := make([]int, len(l.specs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, c int) int { return strings.Compare(l.specs[a].Name, l.specs[c].Name) })
	for _, i := range order {
		sep()
		l.writeEntry(&b, i)
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	return b.Bytes()
}

func (l *layout) writeEntry(b *bytes.Buffer, i int) {
	s := l.specs[i]
	writeJSONString(b, s.Name)
	b.WriteString(`:{"dtype":`)
	writeJSONString(b, string(s.DType))
	b.WriteString(`,"shape":[`)
	for j, d := range s.Shape {
		if j > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(d))
	}
	b.WriteString(`],"data_offsets":[`)
	b.WriteString(strconv.FormatInt(l.begin[i], 10))
	b.WriteByte(',')
	b.WriteString(strconv.FormatInt(l.begin[i]+l.size[i], 10))
	b.WriteString("]}")
}

// writeJSONString writes s as a JSON string without HTML escaping, which
// would turn '<' in a name into \u003c for no benefit in a binary file.
func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // a string always encodes; writing to a Buffer cannot fail
	b.Truncate(b.Len() - 1) // drop the newline Encode appends
}

// WriteFile writes a safetensors file at path with the tensors of specs,
// stored in the given order. fill(i, dst) must set dst (len = elements of
// specs[i], zeroed beforehand) to tensor i's values; they are converted to
// specs[i].DType, which must be F32, F16, BF16 (rounded to nearest even) or
// F64. Only one tensor is held in memory at a time.
func WriteFile(path string, specs []WriteSpec, metadata map[string]string, fill func(i int, dst []float32) error) error {
	for _, s := range specs {
		if !s.DType.IsFloat() {
			return fmt.Errorf("safetensors: %s: tensor %q: WriteFile converts only to F32, F16, BF16, F64, not %q (use WriteRawFile)",
				path, s.Name, s.DType)
		}
	}
	return writeAtomic(path, specs, metadata, func(l *layout, w *bufio.Writer) error {
		vals := make([]float32, l.maxElems)
		buf := make([]byte, chunkBytes)
		for i, s := range specs {
			n := int(l.size[i]) / s.DType.Size()
			dst := vals[:n]
			clear(dst)
			if err := fill(i, dst); err != nil {
				return fmt.Errorf("tensor %q: %w", s.Name, err)
			}
			if err := writeConverted(w, s.DType, dst, buf); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeConverted encodes vals chunk by chunk into buf and writes them.
func writeConverted(w *bufio.Writer, dt DType, vals []float32, buf []byte) error {
	per := len(buf) / dt.Size()
	for i := 0; i < len(vals); i += per {
		src := vals[i:min(i+per, len(vals))]
		out := buf[:len(src)*dt.Size()]
		encodeFloat32(dt, src, out)
		if _, err := w.Write(out); err != nil {
			return err
		}
	}
	return nil
}

// EncodeRaw is WriteRawFile into memory: it returns the file's bytes.
func EncodeRaw(specs []WriteSpec, metadata map[string]string, fill func(i int) ([]byte, error)) ([]byte, error) {
	l, err := planLayout(specs)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	var buf bytes.Buffer
	// The size is known: one allocation instead of doubling through a
	// state image that may be gigabytes.
	size := 8 + len(l.headerBytes(metadata))
	if n := len(specs); n > 0 {
		size += int(l.begin[n-1] + l.size[n-1])
	}
	buf.Grow(size)
	w := bufio.NewWriter(&buf)
	if err := writeBody(l, w, metadata, func(l *layout, w *bufio.Writer) error { return rawBody(specs, l, w, fill) }); err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return buf.Bytes(), nil
}

// WriteRawFile is WriteFile for tensors given as raw little-endian bytes,
// which must be exactly the size the spec implies; any dtype is allowed.
// It copies untouched tensors bit-exactly.
func WriteRawFile(path string, specs []WriteSpec, metadata map[string]string, fill func(i int) ([]byte, error)) error {
	return writeAtomic(path, specs, metadata, func(l *layout, w *bufio.Writer) error {
		return rawBody(specs, l, w, fill)
	})
}

func rawBody(specs []WriteSpec, l *layout, w *bufio.Writer, fill func(i int) ([]byte, error)) error {
	for i, s := range specs {
		data, err := fill(i)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", s.Name, err)
		}
		if int64(len(data)) != l.size[i] {
			return fmt.Errorf("tensor %q: fill returned %d bytes, shape %v of %s needs %d",
				s.Name, len(data), s.Shape, s.DType, l.size[i])
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
	}
	return nil
}

// writeBody writes the length prefix, the header and body's data to w and
// flushes it.
func writeBody(l *layout, w *bufio.Writer, metadata map[string]string, body func(*layout, *bufio.Writer) error) error {
	hdr := l.headerBytes(metadata)
	var prefix [8]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(len(hdr)))
	w.Write(prefix[:])
	w.Write(hdr) // bufio keeps the first error; Flush reports it
	if err := body(l, w); err != nil {
		return err
	}
	return w.Flush()
}

// writeAtomic validates specs, then writes the header and the data that
// body produces to path+".tmp", syncs it and renames it over path. On any
// error the temporary file is removed and path is left untouched.
func writeAtomic(path string, specs []WriteSpec, metadata map[string]string, body func(*layout, *bufio.Writer) error) (err error) {
	l, err := planLayout(specs)
	if err != nil {
		return fmt.Errorf("safetensors: %s: %w", path, err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("safetensors: writing %s: %w", path, err)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	if err = writeBody(l, w, metadata, body); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// WriteIndex writes a model.safetensors.index.json at path mapping each
// tensor to its shard, with metadata.total_size, in the layout
// transformers writes (sorted keys, two-space indent). It is written
// atomically like the tensor files.
func WriteIndex(path string, weightMap map[string]string, totalSize int64) (err error) {
	index := struct {
		Metadata  map[string]int64  `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}{map[string]int64{"total_size": totalSize}, weightMap}
	if index.WeightMap == nil {
		index.WeightMap = map[string]string{}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(index); err != nil {
		return fmt.Errorf("safetensors: %s: %w", path, err)
	}
	tmp := path + ".tmp"
	defer func() {
		if err != nil {
			os.Remove(tmp)
			err = fmt.Errorf("safetensors: writing %s: %w", path, err)
		}
	}()
	if err := writeSynced(tmp, b.Bytes()); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// writeSynced writes data to a new file at path and syncs it to disk.
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
