package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// pieceKind classifies a vocabulary entry for decoding, as SentencePiece's
// piece types do.
type pieceKind uint8

const (
	kindNormal  pieceKind = iota // text piece (also user-defined and unused)
	kindControl                  // <s>, </s>: decode to nothing
	kindUnknown                  // <unk>: decodes to the unk surface
	kindByte                     // <0xXX>: one raw byte
)

// defaultUnkSurface is SentencePiece's default text for <unk> (" ⁇ ").
const defaultUnkSurface = " \u2047 "

// decoder implements SentencePiece's DecodeIds (sentencepiece_processor.cc,
// Decode) over a vocabulary whose whitespace symbol is already a plain space.
// Both tokenizer kinds share it so that the same ids give the same text
// whether the vocabulary came from tokenizer.bin or tokenizer.model.
type decoder struct {
	surface []string    // piece text with '▁' replaced by ' '
	kind    []pieceKind // how each id decodes
	byteVal []byte      // the byte of kindByte ids
	unk     string      // unk surface
	// stripFirst: consume the leading space of the first piece, which
	// SentencePiece does when add_dummy_prefix (or remove_extra_whitespaces)
	// is set, since Encode put that space there.
	stripFirst bool
}

// decode follows SentencePiece: a leading space is dropped from the first
// text piece only, as long as nothing has been written yet and no earlier
// piece already consumed such a space; byte runs are decoded as UTF-8 with
// one U+FFFD per invalid byte.
func (d *decoder) decode(ids []int) string {
	var sb strings.Builder
	var pending []byte // run of byte-token bytes not yet written
	var stack [64]byte
	pending = stack[:0]
	isBOSWS, seen := true, false
	for _, id := range ids {
		if id < 0 || id >= len(d.kind) {
			continue
		}
		if d.kind[id] == kindByte {
			pending = append(pending, d.byteVal[id])
			continue
		}
		pending = flushBytes(&sb, pending)
		if seen || sb.Len() > 0 {
			isBOSWS = false
		}
		seen = false
		switch d.kind[id] {
		case kindControl:
		case kindUnknown:
			sb.WriteString(d.unk)
		default:
			s := d.surface[id]
			if isBOSWS && d.stripFirst && strings.HasPrefix(s, " ") {
				s, seen = s[1:], true
			}
			sb.WriteString(s)
		}
	}
	flushBytes(&sb, pending)
	return sb.String()
}

// flushBytes writes a run of raw bytes as SentencePiece does: valid UTF-8
// sequences as they are, every other byte as U+FFFD.
func flushBytes(sb *strings.Builder, b []byte) []byte {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			sb.WriteRune(utf8.RuneError)
		} else {
			sb.Write(b[:n])
		}
		b = b[n:]
	}
	return b[:0]
}

// runcPieces precomputes what run.c's decode() returns for every id, given
// the strings run.c sees (its vocab[] array): plain[id] after any token
// but BOS, afterBOS[id] after BOS (leading space dropped). Precomputing keeps
// Piece free of allocation in generation loops.
func runcPieces(vocab []string) (plain, afterBOS []string) {
	plain = make([]string, len(vocab))
	afterBOS = make([]string, len(vocab))
	for id, s := range vocab {
		plain[id] = runcByte(s)
		afterBOS[id] = runcByte(strings.TrimPrefix(s, " "))
	}
	return plain, afterBOS
}

// byteStrings holds the 256 one-byte strings, so that a byte token's text
// is a substring of one shared string instead of a new allocation.
var byteStrings = func() string {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return string(b)
}()

// runcByte mirrors run.c's sscanf(piece, "<0x%02hhX>", &b): a piece that
// starts with "<0x" and one or two hex digits stands for that byte (run.c
// does not check the closing '>'). sscanf's leniencies beyond that (leading
// blanks, a sign, a second "0x") are not reproduced: no real vocabulary has
// such pieces, and tests check both shipped vocabularies.
func runcByte(s string) string {
	rest, ok := strings.CutPrefix(s, "<0x")
	if !ok {
		return s
	}
	v, n := 0, 0
	for n < 2 && n < len(rest) {
		h := hexVal(rest[n])
		if h < 0 {
			break
		}
		v = v*16 + h
		n++
	}
	if n == 0 {
		return s
	}
	return byteStrings[v : v+1]
}

func hexVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// isBytePiece reports whether s is exactly SentencePiece's byte piece for b,
// "<0xHH>" with upper-case hex.
func isBytePiece(s string, b byte) bool {
	const hex = "0123456789ABCDEF"
	return len(s) == 6 && s[:3] == "<0x" && s[5] == '>' && s[3] == hex[b>>4] && s[4] == hex[b&15]
}
