package safetensors

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"unicode/utf8"
)

// MaxHeaderSize caps the JSON header, as the reference implementation does
// (100 MB), so a corrupt length cannot make Open allocate without bound.
const MaxHeaderSize = 100_000_000

// metadataKey is the reserved header entry holding string metadata.
const metadataKey = "__metadata__"

// FormatError reports a malformed file: which file, which tensor (if any)
// and what is wrong with it.
type FormatError struct {
	File   string
	Tensor string // empty for problems not tied to one tensor
	Msg    string
}

func (e *FormatError) Error() string {
	if e.Tensor != "" {
		return fmt.Sprintf("safetensors: %s: tensor %q: %s", e.File, e.Tensor, e.Msg)
	}
	return fmt.Sprintf("safetensors: %s: %s", e.File, e.Msg)
}

// header is the validated content of a file header.
type header struct {
	tensors  []TensorInfo // sorted by Begin
	metadata map[string]string
}

// tensorError ties a message to one tensor; parseHeader turns it into a
// FormatError once the file name is attached.
type tensorError struct {
	name string
	err  error
}

func (e *tensorError) Error() string { return fmt.Sprintf("tensor %q: %v", e.name, e.err) }

// parseHeader decodes and validates raw (the N header bytes) of the file at
// path, whose data section holds dataLen bytes.
func parseHeader(raw []byte, dataLen int64, path string) (*header, error) {
	h, err := decodeHeader(raw, path)
	if err == nil {
		err = checkRanges(h.tensors, dataLen)
	}
	if err != nil {
		fe := &FormatError{File: path, Msg: err.Error()}
		var te *tensorError
		if errors.As(err, &te) {
			fe.Tensor, fe.Msg = te.name, te.err.Error()
		}
		return nil, fe
	}
	return h, nil
}

// decodeHeader parses the JSON of a header and checks every entry on its
// own; checks across entries are left to checkRanges.
func decodeHeader(raw []byte, path string) (*header, error) {
	if !utf8.Valid(raw) {
		return nil, errors.New("header is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keeps integers exact and lets us reject non-integers
	h := &header{}
	err := expectObject(dec, "header", func(key string) error {
		if key == metadataKey {
			m, err := parseMetadata(dec)
			h.metadata = m
			return err
		}
		t, err := parseEntry(dec)
		if err != nil {
			return &tensorError{key, jsonError(err)}
		}
		t.Name, t.File = key, path
		h.tensors = append(h.tensors, t)
		return nil
	})
	if err != nil {
		return nil, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		// Only the space padding writers add may follow the object.
		return nil, errors.New("header has trailing content after the JSON object")
	}
	return h, nil
}

// expectObject consumes one JSON object from dec, or fails naming what
// (e.g. "header") was expected to be one.
func expectObject(dec *json.Decoder, what string, each func(key string) error) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("%s is %s, not a JSON object", what, tokenKind(tok))
	}
	return walkMembers(dec, each)
}

// walkMembers consumes the members of an object whose '{' has been read,
// calling each(key) for each; each must consume the member's value.
// It rejects duplicate keys, which encoding/json would otherwise resolve
// silently to the last one.
func walkMembers(dec *json.Decoder, each func(key string) error) error {
	seen := make(map[string]struct{})
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok { // unreachable: the decoder only yields strings as keys
			return fmt.Errorf("object key is %s", tokenKind(tok))
		}
		if _, dup := seen[key]; dup {
			return fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = struct{}{}
		if err := each(key); err != nil {
			return err
		}
	}
	_, err := dec.Token() // the closing brace
	return err
}

// jsonError turns decoder failures into messages that say the header is
// not JSON and where; semantic errors pass through unchanged.
func jsonError(err error) error {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("header is not valid JSON at byte %d: %v", syn.Offset, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("header is not valid JSON: unexpected end")
	}
	return err
}

// tokenKind names a JSON token for error messages.
func tokenKind(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		return "an object"
	}
	return fmt.Sprintf("%T", tok)
}

// parseMetadata reads the __metadata__ value: an object of strings, or null.
func parseMetadata(dec *json.Decoder) (map[string]string, error) {
	tok, err := dec.Token()
	if err != nil || tok == nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("__metadata__ is %s, not a JSON object", tokenKind(tok))
	}
	m := make(map[string]string)
	err = walkMembers(dec, func(key string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		s, ok := tok.(string)
		if !ok {
			return fmt.Errorf("__metadata__ value of %q is %s, not a string", key, tokenKind(tok))
		}
		m[key] = s
		return nil
	})
	return m, err
}

// parseEntry reads one tensor entry and checks it on its own: known dtype,
// integer non-negative shape and offsets, and a byte size that matches.
func parseEntry(dec *json.Decoder) (TensorInfo, error) {
	var t TensorInfo
	var haveDType, haveShape, haveOffsets bool
	err := expectObject(dec, "entry", func(key string) error {
		var err error
		switch key {
		case "dtype":
			haveDType = true
			t.DType, err = parseDType(dec)
		case "shape":
			haveShape = true
			t.Shape, err = parseShape(dec)
		case "data_offsets":
			haveOffsets = true
			t.Begin, t.End, err = parseOffsets(dec)
		default: // unknown fields are ignored, as in the reference
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		return err
	})
	switch {
	case err != nil:
		return t, err
	case !haveDType:
		return t, errors.New("missing dtype")
	case !haveShape:
		return t, errors.New("missing shape")
	case !haveOffsets:
		return t, errors.New("missing data_offsets")
	}
	return t, checkSize(t)
}

func parseDType(dec *json.Decoder) (DType, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("dtype is %s, not a string", tokenKind(tok))
	}
	if !DType(s).Valid() {
		return "", fmt.Errorf("unknown dtype %q", s)
	}
	return DType(s), nil
}

func parseShape(dec *json.Decoder) ([]int, error) {
	dims, err := parseIntArray(dec, "shape")
	if err != nil {
		return nil, err
	}
	shape := make([]int, len(dims))
	for i, d := range dims {
		if d < 0 {
			return nil, fmt.Errorf("shape %v has negative dimension %d", dims, d)
		}
		if d > math.MaxInt {
			return nil, fmt.Errorf("shape dimension %d does not fit in int", d)
		}
		shape[i] = int(d)
	}
	return shape, nil
}

func parseOffsets(dec *json.Decoder) (begin, end int64, err error) {
	offs, err := parseIntArray(dec, "data_offsets")
	switch {
	case err != nil:
		return 0, 0, err
	case len(offs) != 2:
		return 0, 0, fmt.Errorf("data_offsets has %d values, want [begin, end]", len(offs))
	case offs[0] < 0 || offs[1] < 0:
		return 0, 0, fmt.Errorf("data_offsets %v are negative", offs)
	case offs[0] > offs[1]:
		return 0, 0, fmt.Errorf("data_offsets begin %d > end %d", offs[0], offs[1])
	}
	return offs[0], offs[1], nil
}

// parseIntArray reads a JSON array of integers that fit in int64. Floats,
// exponents and strings are rejected rather than truncated.
func parseIntArray(dec *json.Decoder, what string) ([]int64, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("%s is %s, not an array of integers", what, tokenKind(tok))
	}
	var out []int64
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		n, ok := tok.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%s holds %s, not an integer", what, tokenKind(tok))
		}
		v, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s value %s is not a 64-bit integer", what, n)
		}
		out = append(out, v)
	}
	_, err = dec.Token() // the closing bracket
	return out, err
}

// byteSize returns the number of bytes n elements of dt occupy. It fails
// on overflow and on sub-byte dtypes whose elements do not fill whole bytes.
func byteSize(dt DType, shape []int) (int64, error) {
	n, err := numElements(shape)
	if err != nil {
		return 0, err
	}
	hi, nbits := bits.Mul64(uint64(n), uint64(dt.Bits()))
	if hi != 0 || nbits/8 > math.MaxInt64 {
		return 0, fmt.Errorf("shape %v of %s overflows 64-bit byte size", shape, dt)
	}
	if nbits%8 != 0 {
		return 0, fmt.Errorf("%d elements of %s do not fill whole bytes", n, dt)
	}
	return int64(nbits / 8), nil
}

// numElements multiplies the dimensions, failing if the product does not
// fit in int. A zero dimension makes the product 0 however large the others.
func numElements(shape []int) (int, error) {
	if slices.Contains(shape, 0) {
		return 0, nil
	}
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v has negative dimension %d", shape, d)
		}
		hi, lo := bits.Mul64(uint64(n), uint64(d))
		if hi != 0 || lo > math.MaxInt {
			return 0, fmt.Errorf("shape %v has more elements than fit in int", shape)
		}
		n = int(lo)
	}
	return n, nil
}

// checkSize verifies that the byte range matches shape × dtype size.
func checkSize(t TensorInfo) error {
	want, err := byteSize(t.DType, t.Shape)
	if err != nil {
		return err
	}
	if got := t.End - t.Begin; got != want {
		return fmt.Errorf("data_offsets [%d, %d] span %d bytes but shape %v of %s needs %d",
			t.Begin, t.End, got, t.Shape, t.DType, want)
	}
	return nil
}

// checkRanges sorts ts by offset and rejects ranges past the data section
// and overlapping ranges. Gaps and trailing bytes are allowed (see the
// package documentation for why).
func checkRanges(ts []TensorInfo, dataLen int64) error {
	slices.SortStableFunc(ts, func(a, b TensorInfo) int {
		if c := cmp.Compare(a.Begin, b.Begin); c != 0 {
			return c
		}
		return cmp.Compare(a.End, b.End)
	})
	var prev *TensorInfo
	for i := range ts {
		t := &ts[i]
		if t.End > dataLen {
			return &tensorError{t.Name, fmt.Errorf(
				"data_offsets [%d, %d] run past the data section of %d bytes", t.Begin, t.End, dataLen)}
		}
		if t.Begin == t.End {
			continue // an empty tensor occupies no bytes and overlaps nothing
		}
		if prev != nil && t.Begin < prev.End {
			return &tensorError{t.Name, fmt.Errorf("data_offsets [%d, %d] overlap tensor %q [%d, %d]",
				t.Begin, t.End, prev.Name, prev.Begin, prev.End)}
		}
		prev = t
	}
	return nil
}
