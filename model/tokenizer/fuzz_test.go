package tokenizer

import (
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/unipruning/unipruning/internal/shareddata"
)

// fuzzSeeds are texts that exercise whitespace, byte fallback, invalid
// UTF-8 and literal special-token text.
var fuzzSeeds = []string{
	"", " ", "  \t\n\n", "Once upon a time", "a\x00b", "\xff\xfe", "\xe4\xb8",
	"\x80\x80\x80\x80\x80", "<unk><s></s><0x0A>", "▁▁x", "日本語 😀 e\u0301",
	strings.Repeat(" ", 70), "𝔘𝔫𝔦 \U0001f9ec", "x▁ y ▁▁  z ▁",
}

// TestNoMergeIntoSpecialPieces is why Decode(Encode(s)) == s holds for the
// shipped llama2.c vocabularies: a merge makes the piece a+b from two
// vocabulary pieces, and no <unk>, control or <0xXX> piece can be written
// so, hence merges only ever produce text pieces.
func TestNoMergeIntoSpecialPieces(t *testing.T) {
	for _, rel := range []string{tok512Path, llamaBinPath} {
		tok := mustLoad(t, rel).(*Llama2C)
		for id := 0; id < l2cMinVocab; id++ {
			p := tok.pieces[id]
			for k := 1; k < len(p); k++ {
				_, a := tok.lookup[p[:k]]
				_, b := tok.lookup[p[k:]]
				if a && b {
					t.Errorf("%s: special piece %d %q = %q + %q", rel, id, p, p[:k], p[k:])
				}
			}
		}
	}
}

// naiveRunCEncode is run.c's encode loop transcribed literally (rescan all
// pairs after every merge, strict ">" against -1e10): the reference the
// heap-based Encode must agree with. Quadratic, so for short texts only.
func naiveRunCEncode(t *Llama2C, text string) []int {
	var ids []int
	if text != "" {
		ids = append(ids, int(t.dummy))
	}
	for i := 0; i < len(text); {
		j := i + 1
		for j < len(text) && text[j]&0xC0 == 0x80 && j-i < 4 {
			j++
		}
		if id, ok := t.lookup[text[i:j]]; ok {
			ids = append(ids, int(id))
		} else {
			for k := i; k < j; k++ {
				ids = append(ids, int(text[k])+3)
			}
		}
		i = j
	}
	for {
		best, bestID, bestIdx := float32(-1e10), -1, -1
		for i := 0; i+1 < len(ids); i++ {
			id, ok := t.lookup[t.pieces[ids[i]]+t.pieces[ids[i+1]]]
			if ok && t.scores[id] > best {
				best, bestID, bestIdx = t.scores[id], int(id), i
			}
		}
		if bestIdx < 0 {
			return ids
		}
		ids[bestIdx] = bestID
		ids = append(ids[:bestIdx+1], ids[bestIdx+2:]...)
	}
}

// FuzzLlama2CEncode: any text encodes without panic to in-range ids equal
// to those of the literal run.c loop, run.c streaming decode gives the input
// bytes back exactly (byte fallback keeps every byte), and Decode gives
// valid UTF-8 text back exactly.
func FuzzLlama2CEncode(f *testing.F) {
	toks := []*Llama2C{}
	for _, rel := range []string{tok512Path, llamaBinPath} {
		tok, err := LoadLlama2C(shareddata.Path(f, rel), 0)
		if err != nil {
			f.Fatal(err)
		}
		toks = append(toks, tok)
	}
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		for _, tok := range toks {
			ids := tok.Encode(text, true, true)
			if ids[0] != 1 || ids[len(ids)-1] != 2 {
				t.Fatalf("BOS/EOS missing: %v", ids)
			}
			var sb strings.Builder
			for i := 1; i < len(ids)-1; i++ {
				if ids[i] < 0 || ids[i] >= tok.VocabSize() {
					t.Fatalf("id %d out of range", ids[i])
				}
				sb.WriteString(tok.Piece(ids[i-1], ids[i]))
			}
			if sb.String() != text {
				t.Fatalf("streamed pieces %q, want %q (ids %v)", sb.String(), text, ids)
			}
			if len(text) <= 256 {
				if want := naiveRunCEncode(tok, text); !slices.Equal(ids[1:len(ids)-1], want) {
					t.Fatalf("Encode(%q) = %v, literal run.c loop %v", text, ids[1:len(ids)-1], want)
				}
			}
			if utf8.ValidString(text) {
				if got := tok.Decode(ids); got != text {
					t.Fatalf("Decode(Encode(%q)) = %q (ids %v)", text, got, ids)
				}
			}
		}
	})
}

// FuzzSentencePieceEncode: the LLaMA-2 model encodes any text without panic
// to in-range ids, word-by-word encoding gives the ids of one
// go-sentencepiece call on the whole text, and Decode gives back the text up
// to SentencePiece's normalisation (invalid UTF-8 -> U+FFFD, '▁' -> ' ').
func FuzzSentencePieceEncode(f *testing.F) {
	tok := mustLoad(f, llamaSPPath).(*SentencePiece)
	if !tok.spaceWall {
		f.Fatal("LLaMA-2 vocabulary should allow word-by-word encoding")
	}
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		ids := tok.Encode(text, true, false)
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("id %d out of range", id)
			}
		}
		want := text
		if !utf8.ValidString(want) {
			want = replaceInvalidUTF8(want)
		}
		var whole []int
		if want != "" {
			for _, t := range tok.proc.Encode(" " + want) {
				whole = append(whole, t.ID)
			}
		}
		if !slices.Equal(ids[1:], whole) {
			t.Fatalf("Encode(%q) = %v, one go-sentencepiece call %v", text, ids[1:], whole)
		}
		got := tok.Decode(ids)
		want = strings.ReplaceAll(want, "▁", " ")
		if got != want {
			t.Fatalf("Decode(Encode(%q)) = %q (ids %v)", text, got, ids)
		}
	})
}

// FuzzLoad: arbitrary bytes as a tokenizer file never panic; whatever loads
// encodes and decodes without panic and with ids in range.
func FuzzLoad(f *testing.F) {
	pieces, scores := minimalVocab("a", "b", "ab", " a")
	f.Add(l2cFile(7, pieces, scores))
	f.Add(l2cFile(7, pieces[:200], scores[:200]))
	f.Add(syntheticSP(nil))
	f.Add(syntheticSP(func(norm []byte) []byte { return appendBool(norm, fNormRemoveWS, true) }))
	f.Add([]byte{})
	f.Add([]byte(`{"model":{}}`))
	if b, err := os.ReadFile(shareddata.Path(f, tok512Path)); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := parse(data)
		if err != nil {
			if tok != nil {
				t.Fatal("tokenizer and error both returned")
			}
			return
		}
		for _, s := range []string{"", "ab a", "\xff▁x\x00", "日本"} {
			for _, id := range tok.Encode(s, true, true) {
				if id < 0 || id >= tok.VocabSize() {
					t.Fatalf("Encode(%q): id %d outside vocab %d", s, id, tok.VocabSize())
				}
			}
		}
		ids := []int{-1, 0, 1, 2, 3, 200, tok.VocabSize() - 1, tok.VocabSize(), math.MaxInt}
		tok.Decode(ids)
		for _, id := range ids {
			tok.Piece(1, id)
			tok.Piece(0, id)
		}
	})
}

// syntheticSP builds a small SentencePiece BPE model like LLaMA's: <unk>,
// <s>, </s>, 256 byte pieces, then "▁", "a", "b", "▁a", "ab"; byte
// fallback; identity normaliser with add_dummy_prefix. edit may change the
// normalizer spec; extra pieces follow with decreasing scores.
func syntheticSP(edit func(norm []byte) []byte, extra ...string) []byte {
	var m []byte
	add := func(piece string, score float32, typ int) {
		var p []byte
		p = protowire.AppendTag(p, fPiecePiece, protowire.BytesType)
		p = protowire.AppendString(p, piece)
		p = protowire.AppendTag(p, fPieceScore, protowire.Fixed32Type)
		p = protowire.AppendFixed32(p, math.Float32bits(score))
		p = protowire.AppendTag(p, fPieceType, protowire.VarintType)
		p = protowire.AppendVarint(p, uint64(typ))
		m = protowire.AppendTag(m, fModelPieces, protowire.BytesType)
		m = protowire.AppendBytes(m, p)
	}
	add("<unk>", 0, typeUnknown)
	add("<s>", 0, typeControl)
	add("</s>", 0, typeControl)
	for b := 0; b < 256; b++ {
		add("<0x"+strings.ToUpper(hexByte(byte(b)))+">", 0, typeByte)
	}
	for i, p := range append([]string{"▁", "a", "b", "▁a", "ab"}, extra...) {
		add(p, -float32(i), typeNormal)
	}
	var tr []byte
	tr = protowire.AppendTag(tr, fTrainerModelType, protowire.VarintType)
	tr = protowire.AppendVarint(tr, modelTypeBPE)
	tr = appendBool(tr, fTrainerByteFallbk, true)
	m = protowire.AppendTag(m, fModelTrainer, protowire.BytesType)
	m = protowire.AppendBytes(m, tr)
	var norm []byte
	norm = protowire.AppendTag(norm, fNormName, protowire.BytesType)
	norm = protowire.AppendString(norm, "identity")
	norm = appendBool(norm, fNormDummy, true)
	norm = appendBool(norm, fNormRemoveWS, false)
	if edit != nil {
		norm = edit(norm)
	}
	m = protowire.AppendTag(m, fModelNormalizer, protowire.BytesType)
	return protowire.AppendBytes(m, norm)
}

func appendBool(b []byte, num protowire.Number, v bool) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, protowire.EncodeBool(v))
}
