package tokenizer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// Ids of the synthetic model's pieces (see syntheticSP).
const (
	synSpace = 259 + iota // "▁"
	synA
	synB
	synSpaceA
	synAB
)

func TestSyntheticSentencePiece(t *testing.T) {
	tok, err := parse(syntheticSP(nil))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Kind() != "sentencepiece" || tok.VocabSize() != 264 || tok.BOS() != 1 || tok.EOS() != 2 {
		t.Fatalf("kind %s vocab %d bos %d eos %d", tok.Kind(), tok.VocabSize(), tok.BOS(), tok.EOS())
	}
	for _, c := range []struct {
		text string
		want []int
	}{
		{"", []int{1}},
		{"a", []int{1, synSpaceA}},                                 // dummy prefix, merged
		{"ab", []int{1, synSpaceA, synB}},                          // "▁a" (-3) beats "ab" (-4)
		{"bab", []int{1, synSpace, synB, synAB}},                   // "▁b" is no piece
		{"b a", []int{1, synSpace, synB, synSpaceA}},               // space inside text
		{"c", []int{1, synSpace, 3 + 'c'}},                         // unknown: byte fallback
		{"\xff", []int{1, synSpace, 3 + 0xEF, 3 + 0xBF, 3 + 0xBD}}, // invalid byte -> U+FFFD -> bytes
	} {
		if got := tok.Encode(c.text, true, false); !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.want)
		}
	}
}

// TestSentencePieceNoSpaceWall: with a piece that spans a space ("▁a▁b"),
// text must not be cut into words, and the merge across the space happens.
func TestSentencePieceNoSpaceWall(t *testing.T) {
	tok, err := parse(syntheticSP(nil, "▁b", "▁a▁b"))
	if err != nil {
		t.Fatal(err)
	}
	if tok.(*SentencePiece).spaceWall {
		t.Fatal("spaceWall set although piece \"▁a▁b\" spans a space")
	}
	if got := tok.Encode("a b", false, false); !slices.Equal(got, []int{synAB + 2}) {
		t.Errorf("Encode = %v, want [%d] (\"▁a▁b\")", got, synAB+2)
	}
	plain, err := parse(syntheticSP(nil))
	if err != nil || !plain.(*SentencePiece).spaceWall {
		t.Fatalf("synthetic model should allow word-by-word encoding (%v)", err)
	}
}

func TestSyntheticSentencePieceDecode(t *testing.T) {
	tok, err := parse(syntheticSP(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ids  []int
		want string
	}{
		{[]int{1, synSpaceA, synB}, "ab"},
		{[]int{synSpace, synSpaceA}, " a"},                 // only the first "▁" is the dummy prefix
		{[]int{0, synSpaceA}, " \u2047  a"},                // <unk> surface, then no stripping
		{[]int{3 + 'x', synSpaceA}, "x a"},                 // a byte counts as text
		{[]int{3 + 0xE6, 3 + 0x97, 3 + 0xA5}, "日"},         // byte run -> UTF-8
		{[]int{3 + 0xE6, 3 + 0x97, synA}, "\ufffd\ufffda"}, // broken run -> U+FFFD per byte
		{[]int{1, 2, -5, 999}, ""},                         // control and out-of-range ids vanish
	} {
		if got := tok.Decode(c.ids); got != c.want {
			t.Errorf("Decode(%v) = %q, want %q", c.ids, got, c.want)
		}
	}
}

// TestSentencePieceOptions: models whose encoding go-sentencepiece plus this
// wrapper would not reproduce are refused with a reason, not mis-encoded.
func TestSentencePieceOptions(t *testing.T) {
	setNorm := func(num protowire.Number, v bool) func([]byte) []byte {
		return func(n []byte) []byte { return appendBool(n, num, v) }
	}
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"remove_extra_whitespaces", syntheticSP(setNorm(fNormRemoveWS, true)), "remove_extra_whitespaces"},
		{"escape_whitespaces off", syntheticSP(setNorm(fNormEscapeWS, false)), "escape_whitespaces"},
		{"charsmap", syntheticSP(func(n []byte) []byte {
			n = protowire.AppendTag(n, fNormCharsmap, protowire.BytesType)
			return protowire.AppendBytes(n, []byte{1, 2, 3, 4})
		}), "normalisation rules"},
		{"unigram", withTrainer(syntheticSP(nil), fTrainerModelType, modelTypeUnigr), "model type 1 not supported"},
		{"ws suffix", withTrainer(syntheticSP(nil), fTrainerWSSuffix, 1), "treat_whitespace_as_suffix"},
		{"bad unk id", withTrainer(syntheticSP(nil), fTrainerUnkID, 5), "unk_id 5"},
		{"bos out of range", withTrainer(syntheticSP(nil), fTrainerBOSID, 9999), "bos/eos id 9999"},
		{"no pieces", protowire.AppendBytes(protowire.AppendTag(nil, fModelTrainer, protowire.BytesType), nil), "no vocabulary pieces"},
	} {
		_, err := parse(c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}

	// add_dummy_prefix off: no space is added, and none is stripped.
	tok, err := parse(syntheticSP(setNorm(fNormDummy, false)))
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Encode("a", false, false); !slices.Equal(got, []int{synA}) {
		t.Errorf("no dummy prefix: Encode = %v", got)
	}
	if got := tok.Decode([]int{synSpaceA}); got != " a" {
		t.Errorf("no dummy prefix: Decode = %q", got)
	}
	// BOS disabled (-1): not added.
	tok, err = parse(withTrainer(syntheticSP(nil), fTrainerBOSID, -1))
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Encode("a", true, false); tok.BOS() != -1 || !slices.Equal(got, []int{synSpaceA}) {
		t.Errorf("bos -1: BOS %d, Encode %v", tok.BOS(), got)
	}
}

// withTrainer appends a second trainer spec setting one varint field;
// protobuf merges repeated occurrences of a message field.
func withTrainer(model []byte, num protowire.Number, v int64) []byte {
	tr := protowire.AppendTag(nil, num, protowire.VarintType)
	tr = protowire.AppendVarint(tr, uint64(v))
	model = protowire.AppendTag(model, fModelTrainer, protowire.BytesType)
	return protowire.AppendBytes(model, tr)
}

func TestFindInDir(t *testing.T) {
	dir := t.TempDir()
	if _, ok := FindInDir(dir); ok {
		t.Fatal("found a tokenizer in an empty directory")
	}
	write := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	js := write("tokenizer.json")
	if p, ok := FindInDir(dir); !ok || p != js {
		t.Errorf("FindInDir = %q %v, want %q", p, ok, js)
	}
	model := write("tokenizer.model")
	if p, ok := FindInDir(dir); !ok || p != model {
		t.Errorf("FindInDir = %q %v, want %q (tokenizer.model first)", p, ok, model)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, ok := FindInDir(filepath.Join(dir, "sub")); ok {
		t.Error("found a tokenizer in an empty subdirectory")
	}
}
