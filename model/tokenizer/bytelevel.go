package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// byteChar is GPT-2's bytes_to_unicode table, which every byte-level BPE
// (GPT-2, Llama-3, Qwen2 …) uses to write arbitrary bytes as printable
// characters in vocab.json / tokenizer.json: the printable Latin-1 bytes
// ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves, the other 68 bytes
// are numbered in order from U+0100.
var byteChar, charByte = func() ([256]rune, map[rune]byte) {
	var bc [256]rune
	cb := make(map[rune]byte, 256)
	n := rune(0)
	for b := 0; b < 256; b++ {
		if ('!' <= b && b <= '~') || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF) {
			bc[b] = rune(b)
		} else {
			bc[b] = 256 + n
			n++
		}
		cb[bc[b]] = byte(b)
	}
	return bc, cb
}()

// byteLevelDecode returns the bytes a byte-level token string stands for,
// and false when some character of s is not one of the 256 byte symbols
// (such a token is not reachable by byte-level BPE; Hugging Face's ByteLevel
// decoder then emits its UTF-8 text unchanged).
func byteLevelDecode(s string) (string, bool) {
	var sb strings.Builder
	sb.Grow(len(s))
	for _, r := range s {
		b, ok := charByte[r]
		if !ok {
			return s, false
		}
		sb.WriteByte(b)
	}
	return sb.String(), true
}

// byteLevelEncode writes raw bytes as byte-level symbols (for messages).
func byteLevelEncode(raw string) string {
	var sb strings.Builder
	for i := 0; i < len(raw); i++ {
		sb.WriteRune(byteChar[raw[i]])
	}
	return sb.String()
}

// maximalSubpart returns the length of the longest prefix of b that starts
// a well-formed UTF-8 sequence without completing one (at least 1): the unit
// that Rust's String::from_utf8_lossy and Python's errors="replace" turn into
// one U+FFFD (Unicode's "substitution of maximal subparts").
func maximalSubpart(b string) int {
	lo, hi := byte(0x80), byte(0xBF)
	need := 0
	switch c := b[0]; {
	case 0xC2 <= c && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c == 0xED:
		need, hi = 2, 0x9F
	case 0xE1 <= c && c <= 0xEF:
		need = 2
	case c == 0xF0:
		need, lo = 3, 0x90
	case c == 0xF4:
		need, hi = 3, 0x8F
	case 0xF1 <= c && c <= 0xF3:
		need = 3
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		if c := b[n]; c < lo || c > hi {
			break
		}
		n++
		lo, hi = 0x80, 0xBF
	}
	return n
}

// toValidUTF8 replaces every maximal invalid subpart by U+FFFD, as Python
// decodes bytes with errors="replace" and Rust's from_utf8_lossy does.
func toValidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var sb strings.Builder
	sb.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 {
			n = maximalSubpart(s[i:])
			sb.WriteRune(utf8.RuneError)
		} else {
			sb.WriteString(s[i : i+n])
		}
		i += n
	}
	return sb.String()
}
