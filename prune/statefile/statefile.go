// Package statefile stores named tensors compactly and verifiably: a
// safetensors container whose tensors are zstd-compressed U8 blobs, with
// each tensor's real dtype, shape and sha256 in the header metadata. The
// search stage uses it for shard checkpoints (W, Adam moments, z, Γ,
// first-step) and for the Γ store that extraction reads.
package statefile

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/unipruning/unipruning/model/safetensors"
)

// Format names the layout in the metadata.
const Format = "unipruning-state/1"

// Tensor is one stored array: F32 or I32 values.
type Tensor struct {
	Name  string
	Shape []int
	F32   []float32 // exactly one of F32 / I32 is set
	I32   []int32
}

// raw returns the tensor's little-endian bytes in buf (grown as needed,
// so one buffer serves every tensor of an image) and its dtype.
func (t *Tensor) raw(buf []byte) ([]byte, string) {
	n, dt := 4*len(t.F32), "F32"
	if t.I32 != nil {
		n, dt = 4*len(t.I32), "I32"
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	b := buf[:n]
	if t.I32 != nil {
		for i, v := range t.I32 {
			binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
		}
		return b, dt
	}
	for i, v := range t.F32 {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b, dt
}

// Encode serialises tensors (sorted by name) and metadata into one
// safetensors byte image.
//
// Memory: the image is the only large allocation. Each tensor is
// compressed twice — once to learn its size for the header, once straight
// into the image — instead of keeping every compressed tensor until the
// image is assembled, which doubled a checkpoint's footprint (the image
// of a 110M search's state is gigabytes). zstd is deterministic, and the
// second size is checked against the first.
func Encode(ts []Tensor, meta map[string]string) ([]byte, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	sorted := append([]Tensor(nil), ts...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	md := map[string]string{"format": Format}
	for k, v := range meta {
		md[k] = v
	}
	specs := make([]safetensors.WriteSpec, len(sorted))
	var raw, zbuf []byte
	compress := func(t *Tensor) string {
		var dt string
		raw, dt = t.raw(raw)
		if need := len(raw) + len(raw)/64 + 1024; cap(zbuf) < need {
			zbuf = make([]byte, 0, need)
		}
		zbuf = enc.EncodeAll(raw, zbuf[:0])
		return dt
	}
	for i := range sorted {
		t := &sorted[i]
		dt := compress(t)
		sum := sha256.Sum256(raw)
		md["t:"+t.Name] = fmt.Sprintf("%s;%s;%s", dt, joinInts(t.Shape), hex.EncodeToString(sum[:]))
		specs[i] = safetensors.WriteSpec{Name: t.Name, DType: safetensors.U8, Shape: []int{len(zbuf)}}
	}
	return safetensors.EncodeRaw(specs, md, func(i int) ([]byte, error) {
		compress(&sorted[i])
		if len(zbuf) != specs[i].Shape[0] {
			return nil, fmt.Errorf("statefile: %s compressed to %d bytes, then %d", sorted[i].Name, specs[i].Shape[0], len(zbuf))
		}
		return zbuf, nil
	})
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, "x")
}

// Decoded is a parsed state image.
type Decoded struct {
	Meta    map[string]string
	Tensors map[string]*Tensor
}

// Decode parses and verifies an image made by Encode: every tensor's
// sha256 must match, so corruption is reported, never used.
func Decode(img []byte) (*Decoded, error) {
	f, err := safetensors.OpenBytes("state image", img)
	if err != nil {
		return nil, err
	}
	return decodeFile(f, "state image")
}

// ReadFile parses and verifies a state file on disk.
func ReadFile(path string) (*Decoded, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return decodeFile(f, path)
}

func decodeFile(f *safetensors.File, path string) (*Decoded, error) {
	md := f.Metadata()
	if md["format"] != Format {
		return nil, fmt.Errorf("%s: not a unipruning state file (format %q)", path, md["format"])
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	d := &Decoded{Meta: md, Tensors: map[string]*Tensor{}}
	for _, info := range f.Tensors() {
		t, err := decodeTensor(f, dec, info.Name, md["t:"+info.Name])
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %s: %w", path, info.Name, err)
		}
		d.Tensors[info.Name] = t
	}
	return d, nil
}

func decodeTensor(f *safetensors.File, dec *zstd.Decoder, name, desc string) (*Tensor, error) {
	parts := strings.Split(desc, ";")
	if len(parts) != 3 {
		return nil, fmt.Errorf("missing description")
	}
	shape, n, err := parseShape(parts[1])
	if err != nil {
		return nil, err
	}
	comp, err := f.ReadRaw(name)
	if err != nil {
		return nil, err
	}
	raw, err := dec.DecodeAll(comp, nil)
	if err != nil {
		return nil, fmt.Errorf("corrupt data: %w", err)
	}
	sum := sha256.Sum256(raw)
	if hex.EncodeToString(sum[:]) != parts[2] {
		return nil, fmt.Errorf("checksum mismatch (the file is corrupted)")
	}
	if len(raw) != 4*n {
		return nil, fmt.Errorf("holds %d bytes, shape %s needs %d", len(raw), parts[1], 4*n)
	}
	t := &Tensor{Name: name, Shape: shape}
	switch parts[0] {
	case "F32":
		t.F32 = make([]float32, n)
		for i := range t.F32 {
			t.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case "I32":
		t.I32 = make([]int32, n)
		for i := range t.I32 {
			t.I32[i] = int32(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	default:
		return nil, fmt.Errorf("unknown dtype %q", parts[0])
	}
	return t, nil
}

func parseShape(s string) ([]int, int, error) {
	n := 1
	var shape []int
	for _, p := range strings.Split(s, "x") {
		d, err := strconv.Atoi(p)
		if err != nil || d < 0 {
			return nil, 0, fmt.Errorf("malformed shape %q", s)
		}
		shape = append(shape, d)
		n *= d
	}
	return shape, n, nil
}
