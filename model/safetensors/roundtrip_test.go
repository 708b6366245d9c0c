package safetensors

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testValues returns n deterministic values mixing ordinary numbers with
// the specials every float dtype must carry through.
func testValues(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 7))
	specials := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 0.1, 65504, 1e-8, 3e38,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
	v := make([]float32, n)
	for i := range v {
		if i < len(specials) {
			v[i] = specials[i]
		} else {
			v[i] = float32(r.NormFloat64())
		}
	}
	return v
}

// expected returns what reading vals back from dtype dt must give.
func expected(dt DType, vals []float32) []float32 {
	out := make([]float32, len(vals))
	for i, v := range vals {
		switch dt {
		case F16:
			out[i] = F16ToF32(F32ToF16(v))
		case BF16:
			out[i] = BF16ToF32(F32ToBF16(v))
		default: // F32 and F64 hold every float32 exactly
			out[i] = v
		}
	}
	return out
}

func sameFloats(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool {
		return math.Float32bits(x) == math.Float32bits(y) || (x != x && y != y)
	})
}

func TestRoundTripFloatDTypes(t *testing.T) {
	dtypes := []DType{F32, F16, BF16, F64}
	var specs []WriteSpec
	var vals [][]float32
	for i, dt := range dtypes {
		shape := []int{3, 5 + i}
		specs = append(specs, WriteSpec{Name: "t." + string(dt), DType: dt, Shape: shape})
		vals = append(vals, testValues(3*(5+i), uint64(i)))
	}
	specs = append(specs, WriteSpec{Name: "empty", DType: BF16, Shape: []int{0, 4}},
		WriteSpec{Name: "scalar", DType: F64, Shape: []int{}})
	vals = append(vals, nil, []float32{math.Pi})
	path := filepath.Join(t.TempDir(), "float.safetensors")
	meta := map[string]string{"format": "pt", "note": "<&>"}
	err := WriteFile(path, specs, meta, func(i int, dst []float32) error {
		copy(dst, vals[i])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.Metadata(); fmt.Sprint(got) != fmt.Sprint(meta) {
		t.Errorf("metadata = %v, want %v", got, meta)
	}
	for i, s := range specs {
		info, ok := f.Info(s.Name)
		if !ok || info.DType != s.DType || !slices.Equal(info.Shape, s.Shape) || info.File != path {
			t.Fatalf("Info(%q) = %+v, %v", s.Name, info, ok)
		}
		got, err := f.ReadFloat32(s.Name)
		if err != nil {
			t.Fatal(err)
		}
		if want := expected(s.DType, vals[i]); !sameFloats(got, want) {
			t.Errorf("%s: read %v, want %v", s.Name, got, want)
		}
	}
}

// randomSpecs builds one tensor of every dtype with random raw bytes.
func randomSpecs(r *rand.Rand) ([]WriteSpec, [][]byte) {
	var specs []WriteSpec
	var data [][]byte
	for i, dt := range AllDTypes {
		shape := []int{2, 4 + r.IntN(5)*2} // even counts suit the sub-byte dtypes
		n := shape[0] * shape[1] * dt.Bits() / 8
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		specs = append(specs, WriteSpec{Name: fmt.Sprintf("w%02d.%s", i, dt), DType: dt, Shape: shape})
		data = append(data, b)
	}
	return specs, data
}

func TestRoundTripRawEveryDType(t *testing.T) {
	specs, data := randomSpecs(rand.New(rand.NewPCG(3, 4)))
	slices.Reverse(specs) // stored order differs from name order
	slices.Reverse(data)
	path := filepath.Join(t.TempDir(), "raw.safetensors")
	if err := WriteRawFile(path, specs, nil, func(i int) ([]byte, error) { return data[i], nil }); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Metadata() != nil {
		t.Errorf("metadata = %v, want nil", f.Metadata())
	}
	ts := f.Tensors()
	for i, s := range specs {
		if ts[i].Name != s.Name {
			t.Fatalf("Tensors()[%d] = %q, want %q (file order)", i, ts[i].Name, s.Name)
		}
		got, err := f.ReadRaw(s.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data[i]) {
			t.Errorf("%s: raw bytes differ", s.Name)
		}
		_, err = f.ReadFloat32(s.Name)
		if s.DType.IsFloat() != (err == nil) {
			t.Errorf("%s: ReadFloat32 err = %v", s.Name, err)
		}
		if err != nil && !strings.Contains(err.Error(), "cannot be read as float32") {
			t.Errorf("%s: unclear error %q", s.Name, err)
		}
	}
}

func TestDTypeSizes(t *testing.T) {
	want := map[DType]int{F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1,
		U64: 8, U32: 4, U16: 2, U8: 1, Bool: 1, C64: 8, F8E4M3: 1, F8E5M2: 1, F8E8M0: 1,
		F8E4M3FNUZ: 1, F8E5M2FNUZ: 1, F6E2M3: 0, F6E3M2: 0, F4: 0, "X": 0}
	for dt, size := range want {
		if dt.Size() != size {
			t.Errorf("%s.Size() = %d, want %d", dt, dt.Size(), size)
		}
	}
	if len(AllDTypes) != 22 || DType("F8").Valid() || !F4.Valid() || F4.Bits() != 4 {
		t.Error("dtype table is wrong")
	}
}

func TestReadFloat32Into(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.safetensors")
	n := 3*chunkBytes/2 + 3 // spans several conversion chunks, ragged end
	vals := testValues(n, 9)
	specs := []WriteSpec{{Name: "b", DType: BF16, Shape: []int{n}}, {Name: "d", DType: F64, Shape: []int{n}}}
	if err := WriteFile(path, specs, nil, func(_ int, dst []float32) error { copy(dst, vals); return nil }); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dst := make([]float32, n)
	for _, s := range specs {
		if err := f.ReadFloat32Into(s.Name, dst); err != nil {
			t.Fatal(err)
		}
		if !sameFloats(dst, expected(s.DType, vals)) {
			t.Errorf("%s: values differ", s.Name)
		}
		allocs := testing.AllocsPerRun(5, func() {
			if err := f.ReadFloat32Into(s.Name, dst); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per ReadFloat32Into, want 0", s.Name, allocs)
		}
	}
	if err := f.ReadFloat32Into("b", dst[1:]); err == nil || !strings.Contains(err.Error(), "destination has") {
		t.Errorf("short destination: err = %v", err)
	}
	if _, err := f.ReadRaw("nope"); err == nil || !strings.Contains(err.Error(), `no tensor "nope"`) {
		t.Errorf("missing tensor: err = %v", err)
	}
}

func TestReadAfterTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.safetensors")
	specs := []WriteSpec{{Name: "a", DType: F32, Shape: []int{64}}}
	if err := WriteFile(path, specs, nil, func(int, []float32) error { return nil }); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := os.Stat(path)
	if err := os.Truncate(path, st.Size()-4); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadFloat32("a"); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("err = %v, want a truncation error", err)
	}
}

// TestWriteFailuresLeaveNothing checks the atomic-write contract: on any
// error neither the target nor the temporary file remains, and an existing
// target is untouched.
func TestWriteFailuresLeaveNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	ok := []WriteSpec{{Name: "a", DType: F32, Shape: []int{2}}, {Name: "b", DType: F16, Shape: []int{3}}}
	cases := []struct {
		name string
		run  func() error
		want string
	}{
		{"fill error", func() error {
			return WriteFile(path, ok, nil, func(i int, _ []float32) error {
				if i == 1 {
					return boom
				}
				return nil
			})
		}, `tensor "b": boom`},
		{"raw fill error", func() error {
			return WriteRawFile(path, ok, nil, func(int) ([]byte, error) { return nil, boom })
		}, "boom"},
		{"raw wrong size", func() error {
			return WriteRawFile(path, ok, nil, func(int) ([]byte, error) { return make([]byte, 8), nil })
		}, `tensor "b": fill returned 8 bytes, shape [3] of F16 needs 6`},
		{"non-float dtype", func() error {
			return WriteFile(path, []WriteSpec{{Name: "i", DType: I32, Shape: []int{1}}}, nil, nil)
		}, "use WriteRawFile"},
		{"duplicate name", func() error {
			return WriteRawFile(path, []WriteSpec{ok[0], ok[0]}, nil, nil)
		}, `duplicate tensor name "a"`},
		{"reserved name", func() error {
			return WriteRawFile(path, []WriteSpec{{Name: "__metadata__", DType: U8}}, nil, nil)
		}, "reserved"},
		{"unknown dtype", func() error {
			return WriteRawFile(path, []WriteSpec{{Name: "x", DType: "F128"}}, nil, nil)
		}, "unknown dtype"},
		{"negative dim", func() error {
			return WriteRawFile(path, []WriteSpec{{Name: "x", DType: U8, Shape: []int{-1}}}, nil, nil)
		}, "negative"},
		{"ragged sub-byte", func() error {
			return WriteRawFile(path, []WriteSpec{{Name: "x", DType: F4, Shape: []int{3}}}, nil, nil)
		}, "whole bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.run()
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("err = %v, want one naming %s and containing %q", err, path, c.want)
			}
			if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("temporary file left behind: %v", err)
			}
			if b, _ := os.ReadFile(path); string(b) != "old" {
				t.Fatalf("target changed to %q", b)
			}
		})
	}
}

// writeShards writes a two-shard model with an index into dir and returns
// the values of every tensor by name.
func writeShards(t *testing.T, dir string) map[string][]float32 {
	t.Helper()
	shards := map[string][]WriteSpec{
		"model-00001-of-00002.safetensors": {
			{Name: "model.embed_tokens.weight", DType: BF16, Shape: []int{8, 4}},
			{Name: "model.layers.0.mlp.up_proj.weight", DType: F16, Shape: []int{6, 4}},
		},
		"model-00002-of-00002.safetensors": {
			{Name: "lm_head.weight", DType: F32, Shape: []int{8, 4}},
			{Name: "model.norm.weight", DType: F64, Shape: []int{4}},
		},
	}
	vals := make(map[string][]float32)
	weightMap := make(map[string]string)
	var total int64
	for file, specs := range shards {
		err := WriteFile(filepath.Join(dir, file), specs, map[string]string{"format": "pt"}, func(i int, dst []float32) error {
			v := testValues(len(dst), uint64(len(vals)+i))
			copy(dst, v)
			vals[specs[i].Name] = expected(specs[i].DType, v)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range specs {
			weightMap[s.Name] = file
			n, _ := byteSize(s.DType, s.Shape)
			total += n
		}
	}
	if err := WriteIndex(filepath.Join(dir, IndexFileName), weightMap, total); err != nil {
		t.Fatal(err)
	}
	return vals
}

func TestShardedSet(t *testing.T) {
	dir := t.TempDir()
	vals := writeShards(t, dir)
	for _, open := range []string{dir, filepath.Join(dir, IndexFileName)} {
		s, err := OpenSet(open)
		if err != nil {
			t.Fatal(err)
		}
		checkSet(t, s, vals)
		want := []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
		if !slices.Equal(s.Files(), want) {
			t.Errorf("Files() = %v, want %v", s.Files(), want)
		}
		if n, ok := s.TotalSize(); !ok || n != 2*32+2*24+4*32+8*4 {
			t.Errorf("TotalSize() = %d, %v", n, ok)
		}
		if s.IndexMetadata()["total_size"] == nil {
			t.Errorf("IndexMetadata() = %v", s.IndexMetadata())
		}
		info, _ := s.Info("lm_head.weight")
		if filepath.Base(info.File) != want[1] {
			t.Errorf("lm_head.weight is in %s", info.File)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// One shard opened on its own is a Set too, without index metadata.
	s, err := OpenSet(filepath.Join(dir, "model-00002-of-00002.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.Tensors()) != 2 || s.IndexMetadata() != nil || s.Files()[0] != "model-00002-of-00002.safetensors" {
		t.Errorf("single shard set: %v %v %v", s.Tensors(), s.IndexMetadata(), s.Files())
	}
}

// checkSet verifies that s holds exactly vals, sorted by name.
func checkSet(t *testing.T, s *Set, vals map[string][]float32) {
	t.Helper()
	ts := s.Tensors()
	if len(ts) != len(vals) || !slices.IsSortedFunc(ts, func(a, b TensorInfo) int { return strings.Compare(a.Name, b.Name) }) {
		t.Fatalf("Tensors() = %v", ts)
	}
	for name, want := range vals {
		got, err := s.ReadFloat32(name)
		if err != nil {
			t.Fatal(err)
		}
		if !sameFloats(got, want) {
			t.Errorf("%s differs", name)
		}
		dst := make([]float32, len(want))
		if err := s.ReadFloat32Into(name, dst); err != nil || !sameFloats(dst, want) {
			t.Errorf("ReadFloat32Into(%s): %v", name, err)
		}
		if _, err := s.ReadRaw(name); err != nil {
			t.Error(err)
		}
	}
	if _, err := s.ReadRaw("nope"); err == nil {
		t.Error("ReadRaw of a missing tensor succeeded")
	}
}

func TestSingleFileDirectory(t *testing.T) {
	dir := t.TempDir()
	specs := []WriteSpec{{Name: "a", DType: F32, Shape: []int{2}}}
	if err := WriteFile(filepath.Join(dir, SingleFileName), specs, nil, func(_ int, d []float32) error { d[0], d[1] = 1, 2; return nil }); err != nil {
		t.Fatal(err)
	}
	s, err := OpenSet(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkSet(t, s, map[string][]float32{"a": {1, 2}})
	if !slices.Equal(s.Files(), []string{SingleFileName}) {
		t.Errorf("Files() = %v", s.Files())
	}
	if _, ok := s.TotalSize(); ok {
		t.Error("TotalSize of a single file")
	}
}

func TestOpenSetErrors(t *testing.T) {
	shard := "model-00001-of-00002.safetensors"
	cases := []struct {
		name  string
		index string
		want  string
	}{
		{"missing shard", `{"weight_map":{"a":"absent.safetensors"}}`, `shard "absent.safetensors"`},
		{"tensor absent from shard", `{"weight_map":{"nope":"` + shard + `"}}`, `tensor "nope" is listed in the index for shard "` + shard + `" but absent`},
		{"duplicate tensor", `{"weight_map":{"a":"` + shard + `","a":"` + shard + `"}}`, `duplicate key "a"`},
		{"escaping shard", `{"weight_map":{"a":"../x.safetensors"}}`, "not a path inside the model directory"},
		{"no weight_map", `{"metadata":{}}`, "no weight_map"},
		{"weight_map value", `{"weight_map":{"a":3}}`, `weight_map value of "a" is a number`},
		{"not JSON", `{"weight_map":`, "not valid JSON"},
		{"not object", `[]`, "index is an array"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeShards(t, dir)
			idx := filepath.Join(dir, IndexFileName)
			if err := os.WriteFile(idx, []byte(c.index), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := OpenSet(dir)
			if err == nil {
				s.Close()
				t.Fatal("OpenSet succeeded")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), idx) {
				t.Fatalf("err = %v, want one naming %s and containing %q", err, idx, c.want)
			}
		})
	}
	if _, err := OpenSet(t.TempDir()); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("empty directory: err = %v", err)
	}
}

// TestConcurrentReads exercises the promise that reads need no locking
// (run with -race).
func TestConcurrentReads(t *testing.T) {
	dir := t.TempDir()
	vals := writeShards(t, dir)
	s, err := OpenSet(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	done := make(chan error)
	for g := range 4 {
		go func() {
			for range 50 {
				for name, want := range vals {
					got, err := s.ReadFloat32(name)
					if err != nil || !sameFloats(got, want) {
						done <- fmt.Errorf("goroutine %d: %s: %v", g, name, err)
						return
					}
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
