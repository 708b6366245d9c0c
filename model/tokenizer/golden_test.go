package tokenizer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/unipruning/unipruning/internal/shareddata"
)

// goldenCase is one input of the golden files (see testdata/README.md).
// The text is inline ("text", or "hex" for invalid UTF-8) or a line of a
// shared data file ("file", "line").
type goldenCase struct {
	Name    string `json:"name"`
	Text    string `json:"text"`
	Hex     string `json:"hex"`
	File    string `json:"file"`
	Line    *int   `json:"line"`
	IDs     []int  `json:"ids"`
	IDsBOS  []int  `json:"ids_bos"`
	Decoded string `json:"decoded"`
}

type spGoldens struct {
	Model       string                 `json:"model"`
	ModelSHA256 string                 `json:"model_sha256"`
	FilesSHA256 map[string]string      `json:"text_files_sha256"`
	Cases       []goldenCase           `json:"cases"`
	Digests     map[string]fileDigests `json:"digests"`
	DecodeCases []struct {
		IDs     []int  `json:"ids"`
		Decoded string `json:"decoded"`
	} `json:"decode_cases"`
}

// fileDigests checks every line of a text file: digest of the ids of each
// block of Block lines, total tokens, and (SentencePiece) the whole file
// encoded as one string.
type fileDigests struct {
	Lines       int      `json:"lines"`
	Block       int      `json:"block"`
	Tokens      int      `json:"tokens"`
	Blocks      []string `json:"blocks"`
	WholeTokens int      `json:"whole_tokens"`
	WholeDigest string   `json:"whole_digest"`
}

type l2cGoldens struct {
	FilesSHA256 map[string]string `json:"text_files_sha256"`
	Tokenizers  map[string]struct {
		File    string                 `json:"file"`
		SHA256  string                 `json:"sha256"`
		Cases   []goldenCase           `json:"cases"`
		Digests map[string]fileDigests `json:"digests"`
	} `json:"tokenizers"`
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

var verified sync.Map // path -> sha256 already checked

// sharedFile returns the path of a shared data file after checking that it
// is the file the goldens were made from.
func sharedFile(t testing.TB, rel, wantSHA string) string {
	t.Helper()
	p := shareddata.Path(t, rel)
	if v, ok := verified.Load(p); ok && v == wantSHA {
		return p
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != wantSHA {
		t.Fatalf("%s: sha256 %x, goldens were made from %s", rel, got, wantSHA)
	}
	verified.Store(p, wantSHA)
	return p
}

var lineCache sync.Map // path -> []string

// fileLines splits a file after every "\n", as make_goldens.py does.
func fileLines(t testing.TB, path string) []string {
	if v, ok := lineCache.Load(path); ok {
		return v.([]string)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	lineCache.Store(path, lines)
	return lines
}

// caseText resolves the input text of a golden case.
func caseText(t testing.TB, c goldenCase, files map[string]string) string {
	t.Helper()
	switch {
	case c.Hex != "":
		b, err := hex.DecodeString(c.Hex)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		return string(b)
	case c.File != "":
		lines := fileLines(t, sharedFile(t, c.File, files[c.File]))
		if c.Line == nil || *c.Line >= len(lines) {
			t.Fatalf("%s: bad line reference", c.Name)
		}
		return lines[*c.Line]
	}
	return c.Text
}

func loadSPGoldens(t testing.TB) (*SentencePiece, spGoldens) {
	var g spGoldens
	readJSON(t, "testdata/llama2_sp_goldens.json", &g)
	tok, err := Load(sharedFile(t, g.Model, g.ModelSHA256))
	if err != nil {
		t.Fatal(err)
	}
	return tok.(*SentencePiece), g
}

// spRoundTripExceptions are the golden inputs that the real SentencePiece
// does not give back from decode(encode(x)), and why. Decode must then
// return what SentencePiece returns.
var spRoundTripExceptions = map[string]string{
	"invalid ff":              "invalid UTF-8 becomes U+FFFD per byte",
	"invalid truncated":       "invalid UTF-8",
	"invalid overlong":        "invalid UTF-8",
	"invalid surrogate":       "invalid UTF-8",
	"invalid continuations":   "invalid UTF-8",
	"invalid truncated emoji": "invalid UTF-8",
	"invalid above max":       "invalid UTF-8",
	"literal sp space":        "U+2581 in the input is SentencePiece's space symbol and decodes to ' '",
	"literal sp spaces":       "U+2581 in the input decodes to ' '",
}

func TestSentencePieceGoldens(t *testing.T) {
	tok, g := loadSPGoldens(t)
	var encOK, decOK, rtOK, rtExc int
	for _, c := range g.Cases {
		text := caseText(t, c, g.FilesSHA256)
		if got := tok.Encode(text, false, false); slices.Equal(got, c.IDs) {
			encOK++
		} else {
			t.Errorf("%s: Encode(%q)\n got %v\nwant %v", c.Name, clip(text), got, c.IDs)
		}
		if got := tok.Encode(text, true, false); !slices.Equal(got, c.IDsBOS) {
			t.Errorf("%s: Encode with BOS = %v, want %v", c.Name, got, c.IDsBOS)
		}
		if got := tok.Decode(c.IDs); got == c.Decoded {
			decOK++
		} else {
			t.Errorf("%s: Decode = %q, SentencePiece %q", c.Name, clip(got), clip(c.Decoded))
		}
		_, exc := spRoundTripExceptions[c.Name]
		if (c.Decoded != text) != exc {
			t.Errorf("%s: SentencePiece round trip %v, exception list says %v", c.Name, c.Decoded == text, !exc)
		}
		got := tok.Decode(tok.Encode(text, true, true))
		switch {
		case !exc && got == text:
			rtOK++
		case exc && got == c.Decoded:
			rtExc++
		default:
			t.Errorf("%s: Decode(Encode(%q)) = %q", c.Name, clip(text), clip(got))
		}
	}
	t.Logf("%d cases: Encode matched %d, Decode matched %d, round trip exact %d, documented exceptions %d",
		len(g.Cases), encOK, decOK, rtOK, rtExc)
	checkDigests(t, tok, g.Digests, g.FilesSHA256)
}

// checkDigests encodes every line of the golden text files and compares
// block digests, so that all 13,000 lines are checked, not only the sample.
func checkDigests(t *testing.T, tok Tokenizer, digests map[string]fileDigests, files map[string]string) {
	if len(digests) != 2 {
		t.Fatalf("want digests for 2 files, have %d", len(digests))
	}
	for rel, d := range digests {
		lines := fileLines(t, sharedFile(t, rel, files[rel]))
		if len(lines) != d.Lines {
			t.Fatalf("%s: %d lines, goldens have %d", rel, len(lines), d.Lines)
		}
		ids := make([][]int, len(lines))
		total := 0
		for i, l := range lines {
			ids[i] = tok.Encode(l, false, false)
			total += len(ids[i])
		}
		bad := 0
		for b := 0; b*d.Block < len(ids); b++ {
			if got := idDigest(ids[b*d.Block : min((b+1)*d.Block, len(ids))]); got != d.Blocks[b] {
				bad++
				t.Errorf("%s: lines %d..%d: ids differ from the goldens", rel, b*d.Block, min((b+1)*d.Block, len(ids))-1)
			}
		}
		if total != d.Tokens {
			t.Errorf("%s: %d tokens over all lines, goldens %d", rel, total, d.Tokens)
		}
		msg := ""
		if d.WholeDigest != "" {
			whole := tok.Encode(strings.Join(lines, ""), false, false)
			if len(whole) != d.WholeTokens || idDigest([][]int{whole}) != d.WholeDigest {
				t.Errorf("%s as one string: %d tokens, goldens %d (or ids differ)", rel, len(whole), d.WholeTokens)
			}
			msg = fmt.Sprintf("; whole file as one string: %d tokens", len(whole))
		}
		t.Logf("%s: %d lines, %d tokens, %d/%d blocks of %d lines match%s", rel, len(lines), total, len(d.Blocks)-bad, len(d.Blocks), d.Block, msg)
	}
}

// idDigest is make_goldens.py's digest: sha256 over "id,id,...\n" lines.
func idDigest(lists [][]int) string {
	h := sha256.New()
	var buf []byte
	for _, ids := range lists {
		buf = buf[:0]
		for i, id := range ids {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = strconv.AppendInt(buf, int64(id), 10)
		}
		h.Write(append(buf, '\n'))
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func TestLlama2CGoldens(t *testing.T) {
	var g l2cGoldens
	readJSON(t, "testdata/llama2c_goldens.json", &g)
	if len(g.Tokenizers) != 2 {
		t.Fatalf("want goldens for 2 tokenizers, have %d", len(g.Tokenizers))
	}
	for name, tg := range g.Tokenizers {
		t.Run(name, func(t *testing.T) {
			tok, err := LoadLlama2C(sharedFile(t, tg.File, tg.SHA256), 0)
			if err != nil {
				t.Fatal(err)
			}
			ok, rt := 0, 0
			for _, c := range tg.Cases {
				text := caseText(t, c, g.FilesSHA256)
				if got := tok.Encode(text, false, false); slices.Equal(got, c.IDs) {
					ok++
				} else {
					t.Errorf("%s: Encode(%q)\n got %v\nwant %v", c.Name, clip(text), got, c.IDs)
				}
				want := append(append([]int{1}, c.IDs...), 2)
				if got := tok.Encode(text, true, true); !slices.Equal(got, want) {
					t.Errorf("%s: Encode with BOS, EOS = %v, want %v", c.Name, got, want)
				}
				if !utf8.ValidString(text) {
					continue
				}
				if got := tok.Decode(tok.Encode(text, true, false)); got == text {
					rt++
				} else {
					t.Errorf("%s: Decode(Encode(%q)) = %q", c.Name, clip(text), clip(got))
				}
			}
			t.Logf("%d cases: Encode matched %d, valid UTF-8 round trips %d", len(tg.Cases), ok, rt)
			checkDigests(t, tok, tg.Digests, g.FilesSHA256)
		})
	}
}

// TestRunCVersusSentencePiece measures, on the goldens, how often llama2.c's
// encode of the exported LLaMA-2 vocabulary differs from SentencePiece on
// the original model. The differences are expected and explained in
// testdata/README.md; this test pins them so that a change is noticed.
func TestRunCVersusSentencePiece(t *testing.T) {
	var sp spGoldens
	var l2c l2cGoldens
	readJSON(t, "testdata/llama2_sp_goldens.json", &sp)
	readJSON(t, "testdata/llama2c_goldens.json", &l2c)
	runc := l2c.Tokenizers["llama2"].Cases
	if len(runc) != len(sp.Cases) {
		t.Fatalf("golden files disagree on the inputs: %d vs %d", len(runc), len(sp.Cases))
	}
	var differ []string
	for i, c := range sp.Cases {
		if runc[i].Name != c.Name {
			t.Fatalf("case %d: %q vs %q", i, runc[i].Name, c.Name)
		}
		if !slices.Equal(runc[i].IDs, c.IDs) {
			differ = append(differ, c.Name)
		}
	}
	t.Logf("run.c encode differs from SentencePiece on %d of %d inputs: %v", len(differ), len(sp.Cases), differ)
	var want []string
	for name := range spRoundTripExceptions {
		want = append(want, name)
	}
	slices.Sort(want)
	slices.Sort(differ)
	if !slices.Equal(differ, want) {
		t.Errorf("inputs where run.c and SentencePiece differ:\n got %v\nwant %v", differ, want)
	}

	// The same holds on long inputs: the whole files encoded as one string by
	// the llama2.c tokenizer (heap-based merge) give SentencePiece's ids.
	tok := mustLoad(t, llamaBinPath)
	for rel, d := range sp.Digests {
		whole := strings.Join(fileLines(t, sharedFile(t, rel, sp.FilesSHA256[rel])), "")
		ids := tok.Encode(whole, false, false)
		if len(ids) != d.WholeTokens || idDigest([][]int{ids}) != d.WholeDigest {
			t.Errorf("%s as one string: llama2.c %d tokens, SentencePiece %d (or ids differ)", rel, len(ids), d.WholeTokens)
		}
	}
}

// TestDecodeGoldens: both kinds decode chosen and random id sequences to
// exactly what SentencePiece's decode returned.
func TestDecodeGoldens(t *testing.T) {
	sp, g := loadSPGoldens(t)
	bin := mustLoad(t, llamaBinPath)
	if len(g.DecodeCases) < 300 {
		t.Fatalf("only %d decode cases", len(g.DecodeCases))
	}
	for _, c := range g.DecodeCases {
		if got := sp.Decode(c.IDs); got != c.Decoded {
			t.Errorf("sentencepiece Decode(%v) = %q, want %q", c.IDs, got, c.Decoded)
		}
		if got := bin.Decode(c.IDs); got != c.Decoded {
			t.Errorf("llama2c Decode(%v) = %q, want %q", c.IDs, got, c.Decoded)
		}
	}
	t.Logf("%d decode cases checked", len(g.DecodeCases))
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}
