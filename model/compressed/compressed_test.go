package compressed

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"
)

type goldenPart struct {
	DType string `json:"dtype"`
	Shape []int  `json:"shape"`
	Hex   string `json:"hex"`
}

type goldenWeight struct {
	Rows, Cols int
	Bits       []uint16              `json:"bf16_bits"`
	Bitmask    map[string]goldenPart `json:"sparse-bitmask"`
	TwoFour    map[string]goldenPart `json:"sparse-24-bitmask"`
}

func u16Bytes(v []uint16) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], x)
	}
	return b
}

// TestGoldenEncodings: our parts are byte for byte those of the
// compressed-tensors definitions as tools/reference/compressed_ref.py
// computes them with torch and numpy.packbits (names, dtypes, shapes, bit
// order, values, -0.0 dropped, padded last byte).
func TestGoldenEncodings(t *testing.T) {
	b, err := os.ReadFile("../../testdata/reference/compressed_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Unstructured goldenWeight `json:"unstructured"`
		TwoFour      goldenWeight `json:"two_four"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	check := func(w goldenWeight, format string, want map[string]goldenPart) {
		raw := u16Bytes(w.Bits)
		parts, err := Compress(format, "BF16", w.Rows, w.Cols, raw)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		byName := map[string]Part{}
		for _, p := range parts {
			names = append(names, p.Suffix)
			byName[p.Suffix] = p
			gp, ok := want[p.Suffix]
			if !ok {
				t.Errorf("%s: part %q is not in the reference", format, p.Suffix)
				continue
			}
			if p.DType != gp.DType || !reflect.DeepEqual(p.Shape, gp.Shape) || hex.EncodeToString(p.Data) != gp.Hex {
				t.Errorf("%s %s: got %s %v %x, reference %s %v %s", format, p.Suffix, p.DType, p.Shape, p.Data, gp.DType, gp.Shape, gp.Hex)
			}
		}
		if !reflect.DeepEqual(names, PartNames(format)) || len(want) != len(names) {
			t.Errorf("%s: parts %v, reference has %d", format, names, len(want))
		}
		rows, cols, dt, back, err := Decompress(format, byName)
		if err != nil {
			t.Fatal(err)
		}
		// Decompression gives the weight back, with -0.0 as +0.0.
		for i := range w.Bits {
			x := w.Bits[i]
			if x == 0x8000 {
				x = 0
			}
			if binary.LittleEndian.Uint16(back[2*i:]) != x {
				t.Fatalf("%s: element %d decompressed to %#x, want %#x", format, i, binary.LittleEndian.Uint16(back[2*i:]), x)
			}
		}
		if rows != w.Rows || cols != w.Cols || dt != "BF16" {
			t.Errorf("%s: decompressed %dx%d %s", format, rows, cols, dt)
		}
	}
	check(g.Unstructured, SparseBitmask, g.Unstructured.Bitmask)
	check(g.TwoFour, Sparse24Bitmask, g.TwoFour.TwoFour)
	check(g.TwoFour, SparseBitmask, g.TwoFour.Bitmask)
}

// randomSparse makes a rows×cols weight of dtype with roughly frac zeros,
// or 2:4 when nm.
func randomSparse(r *rand.Rand, dtype string, rows, cols int, frac float64, nm bool) []byte {
	size := ElemSize(dtype)
	raw := make([]byte, rows*cols*size)
	for i := 0; i < rows*cols; i++ {
		v := r.NormFloat64()
		if nm {
			if g := i % 4; g == int(uint(i/4*7)%4) || g == int(uint(i/4*7+1)%4) {
				v = 0
			}
		} else if r.Float64() < frac {
			v = 0
		}
		switch dtype {
		case "F32":
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(float32(v)))
		case "F64":
			binary.LittleEndian.PutUint64(raw[8*i:], math.Float64bits(v))
		default: // any 16-bit pattern with the value's sign and a non-zero body
			bits := uint16(r.Uint32()&0x7fff | 1)
			if v == 0 {
				bits = 0
			}
			binary.LittleEndian.PutUint16(raw[2*i:], bits)
		}
	}
	return raw
}

func partsMap(ps []Part) map[string]Part {
	m := map[string]Part{}
	for _, p := range ps {
		m[p.Suffix] = p
	}
	return m
}

// TestRoundTrip: compress → decompress is the identity for every float
// dtype, both formats, widths that do and do not fill the last bitmask byte.
func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, dt := range []string{"BF16", "F16", "F32", "F64"} {
		for _, shape := range [][2]int{{1, 4}, {3, 8}, {5, 36}, {7, 100}} {
			for _, f := range []string{SparseBitmask, Sparse24Bitmask} {
				raw := randomSparse(r, dt, shape[0], shape[1], 0.6, f == Sparse24Bitmask)
				ps, err := Compress(f, dt, shape[0], shape[1], raw)
				if err != nil {
					t.Fatalf("%s %s %v: %v", dt, f, shape, err)
				}
				_, _, gotDT, back, err := Decompress(f, partsMap(ps))
				if err != nil || gotDT != dt || !bytes.Equal(back, raw) {
					t.Fatalf("%s %s %v: round trip differs (%v)", dt, f, shape, err)
				}
				if s := Count(raw, ElemSize(dt)); f == Sparse24Bitmask && !s.Follows24 {
					t.Fatalf("a 2:4 weight does not follow 2:4: %+v", s)
				}
			}
		}
	}
}

func TestCompressErrors(t *testing.T) {
	dense := make([]byte, 2*8)
	for i := range dense {
		dense[i] = 0x3f
	}
	if _, err := Compress(Sparse24Bitmask, "BF16", 1, 8, dense); err == nil || !strings.Contains(err.Error(), "non-zeros in a group") {
		t.Errorf("dense weight as 2:4: %v", err)
	}
	if _, err := Compress(Sparse24Bitmask, "BF16", 1, 6, make([]byte, 12)); err == nil || !strings.Contains(err.Error(), "multiple of 4") {
		t.Errorf("width 6 as 2:4: %v", err)
	}
	if _, err := Compress(SparseBitmask, "I8", 1, 4, make([]byte, 4)); err == nil {
		t.Error("an int8 weight was compressed")
	}
	if _, err := Compress("marlin-24", "BF16", 1, 4, make([]byte, 8)); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("unknown format: %v", err)
	}
}

// TestDecompressBadParts: every inconsistency between the parts is an
// error naming the problem, never a panic or a wrong weight.
func TestDecompressBadParts(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	raw := randomSparse(r, "BF16", 4, 16, 0.5, true)
	for _, f := range []string{SparseBitmask, Sparse24Bitmask} {
		good, _ := Compress(f, "BF16", 4, 16, raw)
		edits := map[string]func(m map[string]Part){
			"missing":        func(m map[string]Part) { delete(m, "bitmask") },
			"shape dtype":    func(m map[string]Part) { p := m["shape"]; p.DType = "I32"; m["shape"] = p },
			"negative shape": func(m map[string]Part) { m["shape"] = Part{"shape", "I64", []int{2}, int64Bytes(-4, 16)} },
			"wrong rows":     func(m map[string]Part) { m["shape"] = Part{"shape", "I64", []int{2}, int64Bytes(5, 16)} },
			"bitmask dtype":  func(m map[string]Part) { p := m["bitmask"]; p.DType = "I8"; m["bitmask"] = p },
			"extra bit": func(m map[string]Part) {
				p := m["bitmask"]
				p.Data = append([]byte(nil), p.Data...)
				p.Data[0] |= 0xff
				m["bitmask"] = p
			},
			"short values": func(m map[string]Part) {
				p := m["compressed"]
				p.Data = p.Data[:len(p.Data)-2]
				m["compressed"] = p
			},
			"int values": func(m map[string]Part) { p := m["compressed"]; p.DType = "I16"; m["compressed"] = p },
		}
		for name, edit := range edits {
			m := partsMap(good)
			edit(m)
			if _, _, _, _, err := Decompress(f, m); err == nil {
				t.Errorf("%s, %s: no error", f, name)
			}
		}
	}
	if _, _, _, _, err := Decompress(Dense, nil); err == nil {
		t.Error("the dense format was decompressed")
	}
}

func TestQualifiesAndTargets(t *testing.T) {
	half := Stats{Zeros: 49, Numel: 100, Follows24: false}
	if !half.Qualifies(Unstructured) || half.Qualifies(TwoFour) {
		t.Errorf("49%% zeros: %+v", half)
	}
	if (Stats{Zeros: 48, Numel: 100}).Qualifies(Unstructured) {
		t.Error("48% zeros qualified")
	}
	mods := []Module{{"a.q_proj", true}, {"a.k_proj", true}, {"a.v_proj", false}, {"lm_head", false}}
	if tg, ig := TargetsAndIgnore(mods); !reflect.DeepEqual(tg, []string{"Linear"}) || !reflect.DeepEqual(ig, []string{"a.v_proj", "lm_head"}) {
		t.Errorf("majority: %v %v", tg, ig)
	}
	mods[1].Qualifies = false
	if tg, ig := TargetsAndIgnore(mods); !reflect.DeepEqual(tg, []string{"a.q_proj"}) || !reflect.DeepEqual(ig, []string{"a.k_proj", "a.v_proj", "lm_head"}) {
		t.Errorf("minority: %v %v", tg, ig)
	}
	mods[0].Qualifies = false
	if tg, ig := TargetsAndIgnore(mods); tg != nil || ig != nil {
		t.Errorf("none: %v %v", tg, ig)
	}
	if Structure(2, 4) != TwoFour || Structure(4, 8) != Unstructured || Structure(0, 0) != Unstructured {
		t.Error("structures")
	}
}

func TestConfigReadWrite(t *testing.T) {
	in := []byte(`{"vocab_size": 32000, "rms_norm_eps": 1e-05, "architectures": ["LlamaForCausalLM"], "quantization_config": {"old": 1, "quant_method": "compressed-tensors"}}`)
	q := NewQuantizationConfig(&SparsityConfig{Format: Sparse24Bitmask, GlobalSparsity: 0.25, Ignore: []string{"lm_head"},
		SparsityStructure: TwoFour, Targets: []string{"Linear"}})
	out, err := WriteConfig(in, q)
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "architectures": [
    "LlamaForCausalLM"
  ],
  "quantization_config": {
    "quant_method": "compressed-tensors",
    "sparsity_config": {
      "format": "sparse-24-bitmask",
      "global_sparsity": 0.25,
      "ignore": [
        "lm_head"
      ],
      "registry_requires_subclass": false,
      "sparsity_structure": "2:4",
      "targets": [
        "Linear"
      ]
    },
    "transform_config": {},
    "version": "0.14.0"
  },
  "rms_norm_eps": 1e-05,
  "vocab_size": 32000
}`
	if string(out) != want {
		t.Errorf("config.json:\n%s\nwant (json.dump(indent=2, sort_keys=True)):\n%s", out, want)
	}
	sp, err := ReadConfig(out)
	if err != nil || sp.Format != Sparse24Bitmask || sp.GlobalSparsity != 0.25 || sp.Targets[0] != "Linear" {
		t.Errorf("read back %+v %v", sp, err)
	}
	none, err := WriteConfig(out, nil)
	if err != nil || strings.Contains(string(none), "quantization_config") {
		t.Errorf("removal: %s %v", none, err)
	}
	for cfg, msg := range map[string]string{
		`{"quantization_config": {"quant_method": "gptq"}}`:                                                           "quant_method \"gptq\"",
		`{"quantization_config": {"quant_method": "compressed-tensors", "config_groups": {"g": {}}}}`:                 "config_groups",
		`{"quantization_config": {"quant_method": "compressed-tensors", "sparsity_config": {"format": "marlin-24"}}}`: "marlin-24",
		`not json`: "not valid JSON",
	} {
		if _, err := ReadConfig([]byte(cfg)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want %q", cfg, err, msg)
		}
	}
	if sp, err := ReadConfig([]byte(`{"hidden_size": 8}`)); sp != nil || err != nil {
		t.Errorf("no quantization_config: %v %v", sp, err)
	}
}
