package tokenizer

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	gosp "github.com/eliben/go-sentencepiece"
)

// SentencePiece is a SentencePiece BPE model (".model" protobuf) with the
// identity normaliser, such as LLaMA-2's (checked against the SentencePiece
// library; TinyLlama ships the same file). Encoding is go-sentencepiece's BPE
// with the normaliser steps it does not implement applied here, so that ids
// equal the SentencePiece library's:
//   - add_dummy_prefix: a space is put in front of non-empty text;
//   - malformed UTF-8: every byte that does not start a valid sequence is
//     replaced by U+FFFD, as SentencePiece's normaliser does (go-sentencepiece
//     would byte-encode it instead).
//
// Models needing more (Unicode normalisation via a precompiled charsmap,
// remove_extra_whitespaces, whitespace as suffix, unigram) are rejected at
// load rather than encoded differently.
type SentencePiece struct {
	proc     *gosp.Processor
	addDummy bool
	// spaceWall: no piece go-sentencepiece can merge into has a non-space
	// symbol followed by '▁', so Encode may encode word by word (see
	// spWordEnd); that keeps its merge queue small and gives the same ids.
	spaceWall bool
	bos, eos  int
	n         int
	plain     []string
	afterBOS  []string
	dec       decoder
}

func (s *SentencePiece) BOS() int                { return s.bos }
func (s *SentencePiece) EOS() int                { return s.eos }
func (s *SentencePiece) VocabSize() int          { return s.n }
func (s *SentencePiece) Kind() string            { return "sentencepiece" }
func (s *SentencePiece) Decode(ids []int) string { return s.dec.decode(ids) }

// Encode returns the SentencePiece ids of text; bos/eos are added only if
// the model defines them (id >= 0).
func (s *SentencePiece) Encode(text string, bos, eos bool) []int {
	if !utf8.ValidString(text) {
		text = replaceInvalidUTF8(text)
	}
	if s.addDummy && text != "" {
		text = " " + text
	}
	out := make([]int, 0, len(text)/4+3)
	if bos && s.bos >= 0 {
		out = append(out, s.bos)
	}
	for len(text) > 0 {
		seg := text
		if s.spaceWall {
			seg = text[:spWordEnd(text)]
		}
		for _, t := range s.proc.Encode(seg) {
			out = append(out, t.ID)
		}
		text = text[len(seg):]
	}
	if eos && s.eos >= 0 {
		out = append(out, s.eos)
	}
	return out
}

// Piece returns what llama2.c run.c's decode() would print for id with this
// vocabulary exported by llama2.c's tokenizer.py ('▁' -> ' ', BOS and EOS
// written as "\n<s>\n" and "\n</s>\n"), so both kinds stream identically.
func (s *SentencePiece) Piece(prev, id int) string {
	if id < 0 || id >= s.n {
		return ""
	}
	if prev == s.bos && s.bos >= 0 {
		return s.afterBOS[id]
	}
	return s.plain[id]
}

// spWordEnd is wordEnd for SentencePiece, where a literal '▁' in the text
// is a space too: the first segment ends before the first ' ' that follows
// neither ' ' nor '▁'.
func spWordEnd(text string) int {
	for k := 1; k < len(text); k++ {
		if text[k] == ' ' && text[k-1] != ' ' && !strings.HasSuffix(text[:k], "▁") {
			return k
		}
	}
	return len(text)
}

// replaceInvalidUTF8 maps each byte that does not begin a valid UTF-8
// sequence to U+FFFD, one replacement per byte as SentencePiece does
// (strings.ToValidUTF8 would collapse runs into one).
func replaceInvalidUTF8(s string) string {
	var sb strings.Builder
	sb.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			sb.WriteRune(utf8.RuneError)
		} else {
			sb.WriteString(s[i : i+n])
		}
		i += n
	}
	return sb.String()
}

// parseSentencePiece checks that data is a SentencePiece model this package
// encodes faithfully and builds the tokenizer.
func parseSentencePiece(data []byte) (*SentencePiece, error) {
	m, err := parseSPModel(data)
	if err != nil {
		return nil, err
	}
	if err := m.supported(); err != nil {
		return nil, err
	}
	rewritten, err := rewriteForGoSP(data, 2*m.maxSymbolLen()+1)
	if err != nil {
		return nil, err
	}
	proc, err := newProcessor(rewritten)
	if err != nil {
		return nil, fmt.Errorf("go-sentencepiece: %w", err)
	}
	s := &SentencePiece{proc: proc, addDummy: m.addDummy, bos: m.bosID, eos: m.eosID, n: len(m.pieces), spaceWall: m.spaceWall()}
	if s.dec, err = spDecoder(m); err != nil {
		return nil, err
	}
	s.plain, s.afterBOS = runcPieces(exportedPieces(m))
	return s, nil
}

// newProcessor calls go-sentencepiece, turning a panic on a malformed model
// into an error: Load must survive arbitrary files.
func newProcessor(data []byte) (proc *gosp.Processor, err error) {
	defer func() {
		if r := recover(); r != nil {
			proc, err = nil, fmt.Errorf("malformed model: %v", r)
		}
	}()
	return gosp.NewProcessor(bytes.NewReader(data))
}

// supported rejects models whose encoding would differ from SentencePiece's.
func (m *spModel) supported() error {
	switch {
	case len(m.pieces) == 0:
		return errNotSP
	case m.modelType != modelTypeBPE:
		return fmt.Errorf("model type %d not supported (only BPE = %d)", m.modelType, modelTypeBPE)
	case m.charsmap > 0 || m.rulesTSV:
		return fmt.Errorf("normalizer %q (Unicode normalisation rules) not supported: only the identity normaliser", m.normName)
	case m.removeWS:
		return errors.New("normalizer option remove_extra_whitespaces not supported")
	case !m.escapeWS:
		return errors.New("normalizer option escape_whitespaces=false not supported")
	case m.wsSuffix:
		return errors.New("trainer option treat_whitespace_as_suffix not supported")
	case m.denormalizer:
		return errors.New("denormalizer rules not supported")
	case m.unkID < 0 || m.unkID >= len(m.pieces) || m.pieces[m.unkID].typ != typeUnknown:
		return fmt.Errorf("unk_id %d is not an <unk> piece", m.unkID)
	}
	for _, id := range []int{m.bosID, m.eosID} {
		if id >= len(m.pieces) || id < -1 {
			return fmt.Errorf("bos/eos id %d outside the vocabulary of %d", id, len(m.pieces))
		}
	}
	return nil
}

// spaceWall reports whether no piece that go-sentencepiece merges into
// (NORMAL, USER_DEFINED, UNUSED) has a non-space symbol followed by '▁'.
func (m *spModel) spaceWall() bool {
	for _, p := range m.pieces {
		mergeable := p.typ == typeNormal || p.typ == typeUserDefined || p.typ == typeUnused
		if q := strings.ReplaceAll(p.piece, "▁", " "); mergeable && wordEnd(q) < len(q) {
			return false
		}
	}
	return true
}

// maxSymbolLen is the longest symbol go-sentencepiece can hold during BPE:
// a piece (merge results and user-defined symbols are pieces) or one rune.
func (m *spModel) maxSymbolLen() int {
	n := utf8.UTFMax
	for _, p := range m.pieces {
		n = max(n, len(p.piece))
	}
	return n
}

// spDecoder describes the vocabulary for decoding from the piece types.
func spDecoder(m *spModel) (decoder, error) {
	d := decoder{
		surface:    make([]string, len(m.pieces)),
		kind:       make([]pieceKind, len(m.pieces)),
		byteVal:    make([]byte, len(m.pieces)),
		unk:        m.unkSurface,
		stripFirst: m.addDummy,
	}
	for id, p := range m.pieces {
		d.surface[id] = strings.ReplaceAll(p.piece, "▁", " ")
		switch p.typ {
		case typeControl:
			d.kind[id] = kindControl
		case typeUnknown:
			d.kind[id] = kindUnknown
		case typeByte:
			v, err := parseBytePiece(p.piece)
			if err != nil {
				return decoder{}, fmt.Errorf("piece %d: %w", id, err)
			}
			d.kind[id], d.byteVal[id] = kindByte, v
		}
	}
	return d, nil
}

// parseBytePiece reads a byte piece "<0xHH>".
func parseBytePiece(s string) (byte, error) {
	h, ok := strings.CutPrefix(s, "<0x")
	if h, ok2 := strings.CutSuffix(h, ">"); ok && ok2 && len(h) == 2 {
		if v, err := strconv.ParseUint(h, 16, 8); err == nil {
			return byte(v), nil
		}
	}
	return 0, fmt.Errorf("byte piece %q is not of the form <0xHH>", s)
}

// exportedPieces are the strings llama2.c's tokenizer.py export writes into
// tokenizer.bin for this model, i.e. what run.c's decode() works on.
func exportedPieces(m *spModel) []string {
	out := make([]string, len(m.pieces))
	for id, p := range m.pieces {
		switch id {
		case m.bosID:
			out[id] = "\n<s>\n"
		case m.eosID:
			out[id] = "\n</s>\n"
		default:
			out[id] = strings.ReplaceAll(p.piece, "▁", " ")
		}
	}
	return out
}
