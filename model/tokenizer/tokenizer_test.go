package tokenizer

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/unipruning/unipruning/internal/shareddata"
)

const (
	tok512Path   = "models/stories260K/tok512.bin"
	llamaBinPath = "models/llama2-tokenizer/tokenizer.bin"
	llamaSPPath  = "models/llama2-tokenizer/tokenizer.model"
)

func mustLoad(t testing.TB, rel string) Tokenizer {
	t.Helper()
	tok, err := Load(shareddata.Path(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestLoadDetectsFormat(t *testing.T) {
	for _, c := range []struct {
		rel, kind   string
		vocab       int
		bos, eos    int
		concreteL2C bool
	}{
		{tok512Path, "llama2c", 512, 1, 2, true},
		{llamaBinPath, "llama2c", 32000, 1, 2, true},
		{llamaSPPath, "sentencepiece", 32000, 1, 2, false},
	} {
		tok := mustLoad(t, c.rel)
		if tok.Kind() != c.kind || tok.VocabSize() != c.vocab || tok.BOS() != c.bos || tok.EOS() != c.eos {
			t.Errorf("%s: kind %s vocab %d bos %d eos %d, want %s %d %d %d", c.rel,
				tok.Kind(), tok.VocabSize(), tok.BOS(), tok.EOS(), c.kind, c.vocab, c.bos, c.eos)
		}
		if _, ok := tok.(*Llama2C); ok != c.concreteL2C {
			t.Errorf("%s: concrete type %T", c.rel, tok)
		}
	}
}

// TestStories260K checks tok512 against what karpathy documents for the
// stories260K model: the greedy sample starts with BOS and ids 403 407 261
// 378 432 383 286 261 376 298, "Once upon a time, there was a little g"
// (the story goes on "irl named Lily..." with later ids).
func TestStories260K(t *testing.T) {
	tok, err := LoadLlama2C(shareddata.Path(t, tok512Path), 512)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tok.Encode("Once upon a time", true, false), []int{1, 403, 407, 261, 378}; !slices.Equal(got, want) {
		t.Errorf("Encode = %v, want %v", got, want)
	}
	ids := []int{1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298}
	const want = "Once upon a time, there was a little g"
	if got := tok.Decode(ids); got != want {
		t.Errorf("Decode = %q, want %q", got, want)
	}
	var sb strings.Builder
	for i := 1; i < len(ids); i++ {
		sb.WriteString(tok.Piece(ids[i-1], ids[i]))
	}
	if sb.String() != want {
		t.Errorf("streamed Piece = %q, want %q", sb.String(), want)
	}
	pieces := []string{" Once", " upon", " a", " time", ",", " there", " was", " a", " little", " g"}
	for i, p := range pieces {
		if got := tok.Piece(0, ids[i+1]); got != p {
			t.Errorf("Piece(0, %d) = %q, want %q", ids[i+1], got, p)
		}
	}
	if got := tok.Encode(want, true, false); !slices.Equal(got, ids) {
		t.Errorf("Encode(%q) = %v, want %v", want, got, ids)
	}
}

// TestPieceRunC checks run.c decode() semantics on llama2.c's own file.
func TestPieceRunC(t *testing.T) {
	tok := mustLoad(t, llamaBinPath)
	for _, c := range []struct {
		prev, id int
		want     string
	}{
		{1, 15043, "Hello"},   // " Hello": leading space dropped after BOS
		{0, 15043, " Hello"},  // kept otherwise
		{2, 15043, " Hello"},  // only BOS strips
		{1, 13, "\n"},         // <0x0A> -> raw byte
		{5, 3 + 0xE4, "\xe4"}, // bytes are raw, even if not valid UTF-8 alone
		{0, 1, "\n<s>\n"},     // control tokens print as exported
		{0, 2, "\n</s>\n"},    // likewise
		{0, 0, "<unk>"},       // <unk> as is
		{1, 29871, ""},        // " " after BOS
		{0, -1, ""},           // out of range
		{0, 32000, ""},        // out of range
		{1, 259, " "},         // "  " after BOS keeps one space
		{0, 29892, ","},       // plain piece
	} {
		if got := tok.Piece(c.prev, c.id); got != c.want {
			t.Errorf("Piece(%d, %d) = %q, want %q", c.prev, c.id, got, c.want)
		}
	}
}

// TestKindsAgree: tokenizer.bin is llama2.c's export of tokenizer.model, so
// Piece must agree on every id and Decode on arbitrary id sequences.
func TestKindsAgree(t *testing.T) {
	bin, sp := mustLoad(t, llamaBinPath), mustLoad(t, llamaSPPath)
	for id := -1; id <= bin.VocabSize(); id++ {
		for _, prev := range []int{0, 1, 2, 29871} {
			if a, b := bin.Piece(prev, id), sp.Piece(prev, id); a != b {
				t.Fatalf("Piece(%d, %d): llama2c %q, sentencepiece %q", prev, id, a, b)
			}
		}
	}
	seq := make([]int, 0, 16)
	state := uint64(1)
	for range 20000 {
		seq = seq[:0]
		for range 1 + int(state%15) {
			state = state*6364136223846793005 + 1442695040888963407
			id := int(state>>33) % 32002 // a few out of range
			if state&(1<<20) != 0 {
				id = int(state>>33) % 300 // favour control, byte and short ids
			}
			seq = append(seq, id)
		}
		if a, b := bin.Decode(seq), sp.Decode(seq); a != b {
			t.Fatalf("Decode(%v): llama2c %q, sentencepiece %q", seq, a, b)
		}
	}
}

// l2cFile builds a llama2.c tokenizer image: header, then tokens.
func l2cFile(maxLen int32, pieces []string, scores []float32) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, maxLen)
	for i, p := range pieces {
		binary.Write(&b, binary.LittleEndian, scores[i])
		binary.Write(&b, binary.LittleEndian, int32(len(p)))
		b.WriteString(p)
	}
	return b.Bytes()
}

// minimalVocab is the smallest valid llama2.c vocabulary plus extra pieces.
func minimalVocab(extra ...string) ([]string, []float32) {
	pieces := []string{"<unk>", "\n<s>\n", "\n</s>\n"}
	for b := 0; b < 256; b++ {
		pieces = append(pieces, "<0x"+strings.ToUpper(hexByte(byte(b)))+">")
	}
	pieces = append(pieces, " ")
	pieces = append(pieces, extra...)
	scores := make([]float32, len(pieces))
	for i := 260; i < len(scores); i++ {
		scores[i] = -float32(i - 260)
	}
	return pieces, scores
}

func hexByte(b byte) string {
	const h = "0123456789abcdef"
	return string([]byte{h[b>>4], h[b&15]})
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMalformedFiles(t *testing.T) {
	good, err := os.ReadFile(shareddata.Path(t, tok512Path))
	if err != nil {
		t.Fatal(err)
	}
	setInt := func(b []byte, off int, v int32) []byte {
		c := slices.Clone(b)
		binary.LittleEndian.PutUint32(c[off:], uint32(v))
		return c
	}
	pieces, scores := minimalVocab()
	noSpace := slices.Clone(pieces[:259])
	wrongByte := slices.Clone(pieces)
	wrongByte[3+0x41] = "A"
	spModel, err := os.ReadFile(shareddata.Path(t, llamaSPPath))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty file"},
		{"3 bytes", good[:3], "not a recognised tokenizer"},
		{"truncated in a piece", good[:len(good)-3], "truncated"},
		{"truncated in a record header", good[:4+8+5+4], "truncated"},
		{"negative length", setInt(good, 8, -5), "length -5 out of range"},
		{"huge length", setInt(good, 8, math.MaxInt32), "out of range"},
		{"length beyond max_token_length", setInt(good, 8, 8), "length 8 out of range [0, max_token_length 7]"},
		{"zero max_token_length", setInt(good, 0, 0), "max_token_length 0"},
		{"text file", []byte("Once upon a time there was a file that was not a tokenizer.\n"), "not a recognised tokenizer"},
		{"json", []byte(`{"model": {"type": "BPE"}}`), "tokenizer.json: model has no vocab"},
		{"too few tokens", l2cFile(7, pieces[:100], scores[:100]), "100 tokens"},
		{"no space piece", l2cFile(7, noSpace, scores[:259]), `no token for " "`},
		{"byte token out of place", l2cFile(7, wrongByte, scores), "want byte-fallback token <0x41>"},
		{"sentencepiece truncated", spModel[:len(spModel)/2], "as SentencePiece model"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(writeTemp(t, "tok", c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); err == nil || !os.IsNotExist(errorsUnwrapAll(err)) {
		t.Errorf("missing file: %v", err)
	}
}

func errorsUnwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestVocabSizeMismatch(t *testing.T) {
	p := shareddata.Path(t, tok512Path)
	for _, c := range []struct {
		n    int
		want string
	}{
		{511, "vocab size mismatch: model expects 511 tokens but 11 bytes follow token 510"},
		{513, "vocab size mismatch: file ends after 512 tokens, model expects 513"},
		{32000, "file ends after 512 tokens, model expects 32000"},
		{-1, "negative vocab size"},
	} {
		if _, err := LoadLlama2C(p, c.n); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("vocab %d: error %v, want %q", c.n, err, c.want)
		}
	}
	for _, n := range []int{0, 512} {
		tok, err := LoadLlama2C(p, n)
		if err != nil || tok.VocabSize() != 512 {
			t.Errorf("vocab %d: %v", n, err)
		}
	}
}

// TestSyntheticMerges pins run.c's merge rules on a tiny vocabulary:
// leftmost pair on equal scores, scores <= -1e10 (as a C float) or NaN never
// merge, the dummy prefix merges like any token, unknown code points fall
// back to one token per byte.
func TestSyntheticMerges(t *testing.T) {
	extra := map[string]float32{
		"a": -10, "b": -10, "c": -10, "x": -10,
		"ab": -1, "ba": -1, " a": -5,
		"cc": float32(-1e10), "xx": -9e9, "ca": float32(math.NaN()),
	}
	var names []string
	for p := range extra {
		names = append(names, p)
	}
	slices.Sort(names)
	pieces, scores := minimalVocab(names...)
	for i, p := range pieces[260:] {
		scores[260+i] = extra[p]
	}
	tok, err := newLlama2C(slices.Clone(pieces), scores)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		text string
		want []string
	}{
		{"bab", []string{" ", "ba", "b"}},        // "ba" and "ab" tie at -1: the left one wins
		{"a", []string{" a"}},                    // dummy prefix merges
		{"cc", []string{" ", "c", "c"}},          // -1e10 is not > run.c's initial best
		{"xx", []string{" ", "xx"}},              // -9e9 is
		{"ca", []string{" ", "c", "a"}},          // NaN never compares greater
		{"é", []string{" ", "<0xC3>", "<0xA9>"}}, // not in vocab: bytes
		{"", []string{}},                         // no dummy prefix for empty text
	} {
		ids := tok.Encode(c.text, false, false)
		got := make([]string, len(ids))
		for i, id := range ids {
			got[i] = pieces[id]
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q) = %q, want %q", c.text, got, c.want)
		}
		if dec := tok.Decode(ids); dec != c.text {
			t.Errorf("Decode(Encode(%q)) = %q", c.text, dec)
		}
	}
	if got := tok.Encode("", true, true); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("Encode(\"\", bos, eos) = %v", got)
	}
}

// TestLlama2CNoSpaceWall: a vocabulary with a piece spanning a space ("a b")
// is merged over the whole text, as run.c does, not word by word.
func TestLlama2CNoSpaceWall(t *testing.T) {
	pieces, scores := minimalVocab("a", "b", " b", "a ", "a b")
	for i, sc := range []float32{-10, -10, -1, -2, -0.5} {
		scores[260+i] = sc
	}
	tok, err := newLlama2C(slices.Clone(pieces), scores)
	if err != nil {
		t.Fatal(err)
	}
	if tok.spaceWall {
		t.Fatal(`spaceWall set although piece "a b" spans a space`)
	}
	ids := tok.Encode("a b", false, false) // " ","a"," ","b" -> " b" (-1) -> "a b" (-0.5)
	if want := []int{259, 264}; !slices.Equal(ids, want) {
		t.Errorf("Encode = %v, want %v", ids, want)
	}
	if want := naiveRunCEncode(tok, "a b"); !slices.Equal(ids, want) {
		t.Errorf("Encode = %v, literal run.c loop %v", ids, want)
	}
}

// TestRuncByte pins the subset of sscanf(piece, "<0x%02hhX>") that run.c's
// decode relies on: one or two hex digits of either case after "<0x", the
// closing '>' not checked.
func TestRuncByte(t *testing.T) {
	for in, want := range map[string]string{
		"<0x41>":  "A",
		"<0x0a>":  "\n",
		"<0xfF>":  "\xff",
		"<0x7":    "\x07",
		"<0x41zz": "A",
		"<0x414>": "A",
		"<0xzz>":  "<0xzz>",
		"<0x":     "<0x",
		"0x41":    "0x41",
		" <0x41>": " <0x41>",
		"":        "",
	} {
		if got := runcByte(in); got != want {
			t.Errorf("runcByte(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConcurrentEncode(t *testing.T) {
	texts := []string{"Once upon a time", "  a\tb\n", "日本語 😀", strings.Repeat("word ", 300)}
	for _, rel := range []string{tok512Path, llamaSPPath} {
		tok := mustLoad(t, rel)
		want := make([][]int, len(texts))
		for i, s := range texts {
			want[i] = tok.Encode(s, true, false)
		}
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for k := range 50 {
					i := (g + k) % len(texts)
					if got := tok.Encode(texts[i], true, false); !slices.Equal(got, want[i]) {
						t.Errorf("%s: concurrent Encode(%q) = %v, want %v", rel, texts[i], got, want[i])
						return
					}
				}
			})
		}
		wg.Wait()
	}
}
