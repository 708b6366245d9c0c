package safetensors

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rawFile writes a safetensors file with the given header text (unpadded)
// and data section, and returns its path.
func rawFile(t *testing.T, header string, data []byte) string {
	t.Helper()
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	b = append(b, data...)
	return bytesFile(t, b)
}

func bytesFile(t *testing.T, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// prefixOnly is a file of just a length prefix followed by pad bytes.
func prefixOnly(n uint64, pad int) []byte {
	return append(binary.LittleEndian.AppendUint64(nil, n), make([]byte, pad)...)
}

func TestOpenRejectsMalformed(t *testing.T) {
	f32x2 := `"dtype":"F32","shape":[2]`
	cases := []struct {
		name   string
		file   []byte // used when header is empty
		header string
		data   int // bytes of data section
		want   string
		tensor string // tensor the FormatError must name, if any
	}{
		{name: "short file", file: []byte{1, 2, 3, 4, 5}, want: "shorter than the 8-byte header length"},
		{name: "empty file", file: []byte{}, want: "shorter than the 8-byte header length"},
		{name: "zero header length", file: prefixOnly(0, 16), want: "header length is 0"},
		{name: "header beyond file", file: prefixOnly(100, 10), want: "header length 100 exceeds the 10 bytes"},
		{name: "header above cap", file: prefixOnly(200_000_000, 8), want: "exceeds the 100000000-byte limit"},
		{name: "huge header length", file: prefixOnly(1<<63+5, 8), want: "exceeds the 100000000-byte limit"},
		{name: "truncated JSON", header: `{"a":`, tensor: "a", want: "not valid JSON"},
		{name: "JSON syntax", header: `{"a" 1}`, tensor: "a", want: "not valid JSON at byte"},
		{name: "garbage", header: `hello`, want: "not valid JSON"},
		{name: "array header", header: `[1,2]`, want: "header is an array, not a JSON object"},
		{name: "string header", header: `"x"`, want: "header is a string, not a JSON object"},
		{name: "not UTF-8", header: "{\"\xff\":1}", want: "not valid UTF-8"},
		{name: "trailing content", header: `{} {}`, want: "trailing content"},
		{name: "entry not object", header: `{"a":5}`, tensor: "a", want: "entry is a number, not a JSON object"},
		{name: "entry array", header: `{"a":[1]}`, tensor: "a", want: "entry is an array"},
		{name: "missing dtype", header: `{"a":{"shape":[2],"data_offsets":[0,8]}}`, data: 8, tensor: "a", want: "missing dtype"},
		{name: "unknown dtype", header: `{"a":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}}`, data: 8, tensor: "a", want: `unknown dtype "F17"`},
		{name: "dtype not string", header: `{"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}}`, data: 8, tensor: "a", want: "dtype is a number"},
		{name: "missing shape", header: `{"a":{"dtype":"F32","data_offsets":[0,8]}}`, data: 8, tensor: "a", want: "missing shape"},
		{name: "negative dim", header: `{"a":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,8]}}`, data: 8, tensor: "a", want: "negative dimension -1"},
		{name: "float dim", header: `{"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}`, data: 8, tensor: "a", want: "shape value 2.5 is not a 64-bit integer"},
		{name: "string dim", header: `{"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}`, data: 8, tensor: "a", want: "shape holds a string"},
		{name: "shape not array", header: `{"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}}`, data: 8, tensor: "a", want: "shape is a number, not an array"},
		{name: "shape null", header: `{"a":{"dtype":"F32","shape":null,"data_offsets":[0,8]}}`, data: 8, tensor: "a", want: "shape is null"},
		{name: "huge dim", header: `{"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]}}`, data: 8, tensor: "a", want: "not a 64-bit integer"},
		{name: "missing offsets", header: `{"a":{` + f32x2 + `}}`, data: 8, tensor: "a", want: "missing data_offsets"},
		{name: "one offset", header: `{"a":{` + f32x2 + `,"data_offsets":[8]}}`, data: 8, tensor: "a", want: "data_offsets has 1 values"},
		{name: "three offsets", header: `{"a":{` + f32x2 + `,"data_offsets":[0,8,9]}}`, data: 9, tensor: "a", want: "data_offsets has 3 values"},
		{name: "begin after end", header: `{"a":{` + f32x2 + `,"data_offsets":[8,0]}}`, data: 8, tensor: "a", want: "begin 8 > end 0"},
		{name: "negative offset", header: `{"a":{` + f32x2 + `,"data_offsets":[-8,0]}}`, data: 8, tensor: "a", want: "negative"},
		{name: "float offset", header: `{"a":{` + f32x2 + `,"data_offsets":[0,8.0]}}`, data: 8, tensor: "a", want: "not a 64-bit integer"},
		{name: "size mismatch", header: `{"a":{` + f32x2 + `,"data_offsets":[0,12]}}`, data: 12, tensor: "a", want: "span 12 bytes but shape [2] of F32 needs 8"},
		{name: "element overflow", header: `{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}}`, tensor: "a", want: "more elements than fit in int"},
		{name: "byte overflow", header: `{"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}}`, tensor: "a", want: "overflows 64-bit byte size"},
		{name: "wrapping product", header: `{"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, tensor: "a", want: "more elements than fit"},
		{name: "sub-byte remainder", header: `{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}}`, data: 2, tensor: "a", want: "3 elements of F4 do not fill whole bytes"},
		{name: "past data section", header: `{"a":{` + f32x2 + `,"data_offsets":[4,12]}}`, data: 8, tensor: "a", want: "run past the data section of 8 bytes"},
		{name: "overlap", header: `{"a":{` + f32x2 + `,"data_offsets":[0,8]},"b":{` + f32x2 + `,"data_offsets":[4,12]}}`, data: 12, tensor: "b", want: `overlap tensor "a" [0, 8]`},
		{name: "same range", header: `{"a":{` + f32x2 + `,"data_offsets":[0,8]},"b":{` + f32x2 + `,"data_offsets":[0,8]}}`, data: 8, tensor: "b", want: "overlap"},
		{name: "duplicate tensor", header: `{"a":{` + f32x2 + `,"data_offsets":[0,8]},"a":{` + f32x2 + `,"data_offsets":[8,16]}}`, data: 16, want: `duplicate key "a"`},
		{name: "duplicate field", header: `{"a":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}}`, data: 8, tensor: "a", want: `duplicate key "dtype"`},
		{name: "duplicate metadata", header: `{"__metadata__":{"k":"1","k":"2"}}`, want: `duplicate key "k"`},
		{name: "duplicate metadata entry", header: `{"__metadata__":{},"__metadata__":{}}`, want: `duplicate key "__metadata__"`},
		{name: "metadata number", header: `{"__metadata__":{"k":1}}`, want: `__metadata__ value of "k" is a number, not a string`},
		{name: "metadata nested", header: `{"__metadata__":{"k":{"x":"y"}}}`, want: `__metadata__ value of "k" is an object`},
		{name: "metadata not object", header: `{"__metadata__":["k"]}`, want: "__metadata__ is an array, not a JSON object"},
		{name: "syntax in entry", header: `{"a":{"dtype":"F32",]}}`, tensor: "a", want: "not valid JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var path string
			if c.header != "" {
				path = rawFile(t, c.header, make([]byte, c.data))
			} else {
				path = bytesFile(t, c.file)
			}
			f, err := Open(path)
			if err == nil {
				f.Close()
				t.Fatalf("Open succeeded, want error containing %q", c.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) || !strings.Contains(msg, path) {
				t.Fatalf("error %q should name the file and contain %q", msg, c.want)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %q is not a *FormatError", msg)
			}
			if fe.File != path || fe.Tensor != c.tensor {
				t.Fatalf("FormatError names file %q tensor %q, want %q %q", fe.File, fe.Tensor, path, c.tensor)
			}
		})
	}
}

// TestOpenLenient pins what Open deliberately accepts.
func TestOpenLenient(t *testing.T) {
	cases := []struct {
		name, header string
		data         int
		tensors      int
	}{
		{"empty header object", `{}`, 0, 0},
		{"padding", `{}      `, 0, 0},
		{"leading whitespace", ` {}`, 0, 0},
		{"gap between tensors", `{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[6,8]}}`, 8, 2},
		{"hole at start", `{"a":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}`, 6, 1},
		{"trailing data", `{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, 100, 1},
		{"empty tensor inside another", `{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"z":{"dtype":"F32","shape":[0,7],"data_offsets":[2,2]}}`, 4, 2},
		{"huge zero-size shape", `{"a":{"dtype":"F32","shape":[9223372036854775807,0],"data_offsets":[0,0]}}`, 0, 1},
		{"scalar", `{"a":{"dtype":"I64","shape":[],"data_offsets":[0,8]}}`, 8, 1},
		{"null metadata", `{"__metadata__":null}`, 0, 0},
		{"unknown field", `{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":{"x":[1,2]}}}`, 1, 1},
		{"sub-byte packed", `{"a":{"dtype":"F4","shape":[2,3],"data_offsets":[0,3]},"b":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[3,6]}}`, 6, 2},
		{"empty name", `{"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 1, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Open(rawFile(t, c.header, make([]byte, c.data)))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if got := len(f.Tensors()); got != c.tensors {
				t.Fatalf("%d tensors, want %d", got, c.tensors)
			}
			for _, ti := range f.Tensors() {
				if _, err := f.ReadRaw(ti.Name); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestOpenMissingFile(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "nope.safetensors"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
}
