package tokenizer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
)

// llama2.c hard-codes these ids (run.c: BOS = 1, EOS = 2, byte b = b+3).
const (
	l2cUnk       = 0
	l2cBOS       = 1
	l2cEOS       = 2
	l2cByteBase  = 3
	l2cMinVocab  = l2cByteBase + 256
	maxTokenLen  = 1 << 16 // sanity bound on max_token_length and piece lengths
	maxVocabSize = 1 << 24 // sanity bound on the number of tokens
)

// Llama2C is a llama2.c tokenizer.bin: int32 max_token_length, then per
// token float32 score, int32 length and that many bytes (little-endian).
// Pieces use ' ' where SentencePiece uses '▁'.
type Llama2C struct {
	pieces []string
	scores []float32
	lookup map[string]int32 // piece -> lowest id with that piece
	canon  []int32          // id -> lowest id with the same piece
	merges map[uint64]int32 // (canon a, canon b) -> id of piece a+b, if mergeable
	dummy  int32            // id of " ", the dummy prefix
	// spaceWall: no piece has a non-space byte followed by a space, so
	// Encode may merge word by word (see wordEnd).
	spaceWall bool
	plain     []string // run.c decode() text after a non-BOS token
	afterBOS  []string // run.c decode() text after BOS
	dec       decoder
}

// LoadLlama2C reads a llama2.c tokenizer file. vocabSize is the model
// header's vocab_size; the file must hold exactly that many tokens. With
// vocabSize 0 the tokens are read until EOF.
func LoadLlama2C(path string, vocabSize int) (*Llama2C, error) {
	if vocabSize < 0 {
		return nil, fmt.Errorf("llama2.c tokenizer %s: negative vocab size %d", path, vocabSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("llama2.c tokenizer: %w", err)
	}
	t, err := parseLlama2C(data, vocabSize)
	if err != nil {
		return nil, fmt.Errorf("llama2.c tokenizer %s: %w", path, err)
	}
	return t, nil
}

// parseLlama2C parses and validates a tokenizer.bin image. Validation is
// strict because the format has no magic number: these checks are what tells
// it apart from other files, and what guarantees that Encode's hard-coded
// ids (byte fallback b+3, the " " dummy prefix) exist.
func parseLlama2C(data []byte, vocabSize int) (*Llama2C, error) {
	if len(data) == 0 {
		return nil, errors.New("empty file")
	}
	if len(data) < 4 {
		return nil, fmt.Errorf("truncated header: %d bytes, need 4", len(data))
	}
	mtl := int32(binary.LittleEndian.Uint32(data))
	if mtl <= 0 || mtl > maxTokenLen {
		return nil, fmt.Errorf("max_token_length %d out of range [1, %d]", mtl, maxTokenLen)
	}
	pieces, scores, err := readLlama2CTokens(data[4:], int(mtl), vocabSize)
	if err != nil {
		return nil, err
	}
	return newLlama2C(pieces, scores)
}

// readLlama2CTokens reads the token records; want = 0 means "until EOF".
func readLlama2CTokens(rest []byte, mtl, want int) ([]string, []float32, error) {
	var pieces []string
	var scores []float32
	if want > 0 {
		pieces = make([]string, 0, min(want, maxVocabSize))
		scores = make([]float32, 0, min(want, maxVocabSize))
	}
	off := 4 // file offset of rest[0], for error messages
	for len(rest) > 0 && (want == 0 || len(pieces) < want) {
		i := len(pieces)
		if i >= maxVocabSize {
			return nil, nil, fmt.Errorf("more than %d tokens", maxVocabSize)
		}
		if len(rest) < 8 {
			return nil, nil, fmt.Errorf("token %d at offset %d: truncated record header (%d bytes left, need 8)", i, off, len(rest))
		}
		score := math.Float32frombits(binary.LittleEndian.Uint32(rest))
		n := int32(binary.LittleEndian.Uint32(rest[4:]))
		if n < 0 || int(n) > mtl {
			return nil, nil, fmt.Errorf("token %d at offset %d: length %d out of range [0, max_token_length %d]", i, off, n, mtl)
		}
		if int(n) > len(rest)-8 {
			return nil, nil, fmt.Errorf("token %d at offset %d: length %d but only %d bytes left (truncated file)", i, off, n, len(rest)-8)
		}
		pieces = append(pieces, string(rest[8:8+n]))
		scores = append(scores, score)
		rest = rest[8+n:]
		off += 8 + int(n)
	}
	if want > 0 && len(pieces) < want {
		return nil, nil, fmt.Errorf("vocab size mismatch: file ends after %d tokens, model expects %d", len(pieces), want)
	}
	if len(rest) > 0 {
		return nil, nil, fmt.Errorf("vocab size mismatch: model expects %d tokens but %d bytes follow token %d (the file holds more tokens)", want, len(rest), want-1)
	}
	return pieces, scores, nil
}

// newLlama2C builds the lookup tables and checks the ids run.c assumes.
func newLlama2C(pieces []string, scores []float32) (*Llama2C, error) {
	if len(pieces) < l2cMinVocab {
		return nil, fmt.Errorf("%d tokens: llama2.c needs at least %d (<unk>, <s>, </s> and 256 byte tokens)", len(pieces), l2cMinVocab)
	}
	for b := 0; b < 256; b++ {
		if !isBytePiece(pieces[l2cByteBase+b], byte(b)) {
			return nil, fmt.Errorf("token %d is %q, want byte-fallback token <0x%02X> (run.c encodes byte b as id b+3)", l2cByteBase+b, pieces[l2cByteBase+b], b)
		}
	}
	t := &Llama2C{pieces: pieces, scores: scores, lookup: make(map[string]int32, len(pieces))}
	for id, p := range pieces {
		// run.c compares pieces as C strings; a NUL ends them there.
		if k := strings.IndexByte(p, 0); k >= 0 {
			pieces[id] = p[:k]
			p = pieces[id]
		}
		if _, dup := t.lookup[p]; !dup {
			t.lookup[p] = int32(id)
		}
	}
	t.buildMerges()
	dummy, ok := t.lookup[" "]
	if !ok {
		return nil, errors.New(`no token for " " (the dummy prefix run.c puts before the text)`)
	}
	t.dummy = dummy
	t.spaceWall = !slices.ContainsFunc(pieces, func(p string) bool {
		return wordEnd(p) < len(p) // a space after a non-space inside p
	})
	t.plain, t.afterBOS = runcPieces(pieces)
	t.dec = l2cDecoder(pieces)
	return t, nil
}

// buildMerges precomputes every merge run.c could make: for each piece
// p = a+b whose halves are pieces too, the pair (a, b) -> p. Encode then
// looks pairs up by id instead of concatenating and hashing strings. Pieces
// scoring no higher than run.c's initial best (-1e10), or NaN, are left
// out because run.c never picks them.
func (t *Llama2C) buildMerges() {
	t.canon = make([]int32, len(t.pieces))
	for id, p := range t.pieces {
		t.canon[id] = t.lookup[p]
	}
	t.merges = make(map[uint64]int32)
	for id, p := range t.pieces {
		if t.lookup[p] != int32(id) || !(t.scores[id] > noMerge) {
			continue
		}
		for k := 1; k < len(p); k++ {
			a, okA := t.lookup[p[:k]]
			b, okB := t.lookup[p[k:]]
			if okA && okB {
				t.merges[pairKey(a, b)] = int32(id)
			}
		}
	}
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// l2cDecoder describes the vocabulary for SentencePiece-style decoding. The
// file carries no piece types; run.c's fixed ids stand in for them.
func l2cDecoder(pieces []string) decoder {
	d := decoder{
		surface:    pieces,
		kind:       make([]pieceKind, len(pieces)),
		byteVal:    make([]byte, len(pieces)),
		unk:        defaultUnkSurface,
		stripFirst: true,
	}
	d.kind[l2cUnk] = kindUnknown
	d.kind[l2cBOS] = kindControl
	d.kind[l2cEOS] = kindControl
	for b := 0; b < 256; b++ {
		d.kind[l2cByteBase+b] = kindByte
		d.byteVal[l2cByteBase+b] = byte(b)
	}
	return d
}

func (t *Llama2C) BOS() int                { return l2cBOS }
func (t *Llama2C) EOS() int                { return l2cEOS }
func (t *Llama2C) VocabSize() int          { return len(t.pieces) }
func (t *Llama2C) Kind() string            { return "llama2c" }
func (t *Llama2C) Decode(ids []int) string { return t.dec.decode(ids) }

// Piece returns what run.c's decode(prev, id) returns.
func (t *Llama2C) Piece(prev, id int) string {
	if id < 0 || id >= len(t.pieces) {
		return ""
	}
	if prev == l2cBOS {
		return t.afterBOS[id]
	}
	return t.plain[id]
}
