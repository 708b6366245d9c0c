package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sync"
)

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int
	// Begin and End delimit the tensor's bytes, relative to the start of
	// the data section of File.
	Begin, End int64
	// File is the path of the file holding the tensor.
	File string
}

// NumElements returns the product of the shape (1 for a scalar).
func (t TensorInfo) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// NumBytes returns the size of the tensor's data.
func (t TensorInfo) NumBytes() int64 { return t.End - t.Begin }

func (t TensorInfo) clone() TensorInfo {
	t.Shape = slices.Clone(t.Shape)
	return t
}

// File is one open .safetensors file. Only the header is read by Open;
// tensor data is read on demand at its offset, so methods are safe for
// concurrent use (until Close).
type File struct {
	path     string
	f        readerAtCloser
	dataOff  int64 // absolute offset of the data section
	tensors  []TensorInfo
	byName   map[string]int
	metadata map[string]string
}

// Open opens path and validates its header (see the package documentation
// for what is checked). The data section is not read.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	sf, err := openFile(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return sf, nil
}

// readerAtCloser is what a File reads from: an *os.File or bytes in memory.
type readerAtCloser interface {
	io.ReaderAt
	io.Closer
}

type bytesReader struct{ *bytes.Reader }

func (bytesReader) Close() error { return nil }

// OpenBytes parses a safetensors image held in memory (name is used in
// error messages), with the same validation as Open.
func OpenBytes(name string, b []byte) (*File, error) {
	return openReader(name, bytesReader{bytes.NewReader(b)}, int64(len(b)))
}

func openFile(path string, f *os.File) (*File, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return openReader(path, f, st.Size())
}

func openReader(path string, f readerAtCloser, size int64) (*File, error) {
	raw, err := readHeader(f, size, path)
	if err != nil {
		return nil, err
	}
	dataOff := 8 + int64(len(raw))
	h, err := parseHeader(raw, size-dataOff, path)
	if err != nil {
		return nil, err
	}
	sf := &File{path: path, f: f, dataOff: dataOff, tensors: h.tensors,
		byName: make(map[string]int, len(h.tensors)), metadata: h.metadata}
	for i, t := range h.tensors {
		sf.byName[t.Name] = i
	}
	return sf, nil
}

// readHeader reads the length prefix and the JSON header bytes, checking
// the length against the file size and MaxHeaderSize before allocating.
func readHeader(f io.ReaderAt, size int64, path string) ([]byte, error) {
	bad := func(format string, a ...any) error {
		return &FormatError{File: path, Msg: fmt.Sprintf(format, a...)}
	}
	if size < 8 {
		return nil, bad("file is %d bytes, shorter than the 8-byte header length", size)
	}
	var prefix [8]byte
	if _, err := f.ReadAt(prefix[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors: %s: reading header length: %w", path, err)
	}
	n := binary.LittleEndian.Uint64(prefix[:])
	switch {
	case n == 0:
		return nil, bad("header length is 0")
	case n > MaxHeaderSize:
		return nil, bad("header length %d exceeds the %d-byte limit", n, MaxHeaderSize)
	case n > uint64(size-8):
		return nil, bad("header length %d exceeds the %d bytes after the length prefix", n, size-8)
	}
	raw := make([]byte, n)
	if _, err := f.ReadAt(raw, 8); err != nil {
		return nil, fmt.Errorf("safetensors: %s: reading header: %w", path, err)
	}
	return raw, nil
}

// Path returns the path the file was opened with.
func (f *File) Path() string { return f.path }

// DataOffset returns the absolute file offset of the data section, for
// callers that stream tensor bytes themselves.
func (f *File) DataOffset() int64 { return f.dataOff }

// Tensors returns all tensors sorted by Begin offset (a copy).
func (f *File) Tensors() []TensorInfo {
	out := make([]TensorInfo, len(f.tensors))
	for i, t := range f.tensors {
		out[i] = t.clone()
	}
	return out
}

// Info returns the tensor called name.
func (f *File) Info(name string) (TensorInfo, bool) {
	i, ok := f.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.tensors[i].clone(), true
}

// Metadata returns a copy of the header's __metadata__ (nil if absent).
func (f *File) Metadata() map[string]string {
	return maps.Clone(f.metadata)
}

func (f *File) lookup(name string) (*TensorInfo, error) {
	i, ok := f.byName[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: no tensor %q", f.path, name)
	}
	return &f.tensors[i], nil
}

// ReadRaw returns the tensor's bytes exactly as stored.
func (f *File) ReadRaw(name string) ([]byte, error) {
	t, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, t.NumBytes())
	if err := f.readAt(t, buf, 0); err != nil {
		return nil, err
	}
	return buf, nil
}

// ReadFloat32 returns the tensor converted to float32. F32, F16, BF16 and
// F64 are supported; other dtypes give an error.
func (f *File) ReadFloat32(name string) ([]float32, error) {
	t, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	if err := checkFloat(t); err != nil {
		return nil, err
	}
	dst := make([]float32, t.NumElements())
	return dst, f.readFloat32(t, dst)
}

// ReadFloat32Into is ReadFloat32 into dst, which must have exactly
// NumElements elements. It allocates nothing in steady state, so a caller
// can reuse one buffer across tensors.
func (f *File) ReadFloat32Into(name string, dst []float32) error {
	t, err := f.lookup(name)
	if err != nil {
		return err
	}
	if err := checkFloat(t); err != nil {
		return err
	}
	if n := t.NumElements(); len(dst) != n {
		return fmt.Errorf("safetensors: %s: tensor %q has %d elements, destination has %d",
			t.File, t.Name, n, len(dst))
	}
	return f.readFloat32(t, dst)
}

func checkFloat(t *TensorInfo) error {
	if !t.DType.IsFloat() {
		return fmt.Errorf("safetensors: %s: tensor %q has dtype %s, which cannot be read as float32 (only F32, F16, BF16, F64)",
			t.File, t.Name, t.DType)
	}
	return nil
}

// chunkBytes is the staging buffer size for conversions: large enough to
// amortise the read syscall, small enough to stay in L2 while converting.
const chunkBytes = 256 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkBytes); return &b }}

// readFloat32 streams the tensor through a pooled chunk and converts it.
func (f *File) readFloat32(t *TensorInfo, dst []float32) error {
	bufp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bufp)
	size := t.DType.Size()
	per := chunkBytes / size // elements per chunk; chunkBytes is a multiple of 8
	for i := 0; i < len(dst); i += per {
		n := min(per, len(dst)-i)
		buf := (*bufp)[:n*size]
		if err := f.readAt(t, buf, int64(i)*int64(size)); err != nil {
			return err
		}
		decodeFloat32(t.DType, buf, dst[i:i+n])
	}
	return nil
}

// readAt reads len(buf) bytes at offset off within tensor t.
func (f *File) readAt(t *TensorInfo, buf []byte, off int64) error {
	_, err := f.f.ReadAt(buf, f.dataOff+t.Begin+off)
	if errors.Is(err, io.EOF) {
		err = errors.New("file ends before the tensor does (truncated after Open?)")
	}
	if err != nil {
		return fmt.Errorf("safetensors: %s: reading tensor %q: %w", f.path, t.Name, err)
	}
	return nil
}

// Close closes the file; reads after Close fail.
func (f *File) Close() error { return f.f.Close() }
