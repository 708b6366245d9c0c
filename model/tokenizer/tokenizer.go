// Package tokenizer turns text into token ids and back for the model families
// unipruning handles: llama2.c "tokenizer.bin" files (encoded exactly as
// karpathy/llama2.c run.c encodes) and SentencePiece BPE ".model" files
// (encoded as the SentencePiece library encodes, via
// github.com/eliben/go-sentencepiece plus the normalisation steps that library
// leaves out).
//
// Perplexity numbers are only comparable with published ones if every token
// id is the one the reference tokenizer produces, so both kinds are checked
// against goldens written by the reference implementations (testdata/).
package tokenizer

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Tokenizer converts between text and token ids. Implementations are safe
// for concurrent use.
type Tokenizer interface {
	// Encode returns the ids of text, with BOS in front and/or EOS at the
	// end when asked (and when the vocabulary has them).
	Encode(text string, bos, eos bool) []int
	// Decode returns the text of ids the way SentencePiece decodes: control
	// tokens vanish, the leading space of the first piece (the dummy prefix
	// Encode added) is dropped, runs of byte tokens become UTF-8 text
	// (U+FFFD for each byte that is not part of a valid sequence), <unk>
	// reads " ⁇ ". Ids outside the vocabulary are skipped.
	Decode(ids []int) string
	// Piece is the streaming decode of llama2.c run.c: the text of id as
	// printed after token prev (leading space dropped after BOS, "<0xXX>"
	// byte tokens become that raw byte, control tokens print as llama2.c
	// exports them, e.g. "\n<s>\n"). Out-of-range ids give "".
	Piece(prev, id int) string
	BOS() int
	EOS() int
	VocabSize() int
	// Kind names the file format: "llama2c" or "sentencepiece".
	Kind() string
}

// Load reads a tokenizer file, recognising its format by content rather than
// by name, because llama2.c models ship tokenizers under arbitrary names
// (tok512.bin, tokenizer.bin).
func Load(path string) (Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	tok, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return tok, nil
}

// parse detects the format of data and parses it. The llama2.c format has
// no magic number, so it is tried first with its strict structural checks
// (every length in range, exactly at EOF, byte tokens in place), which a
// protobuf or JSON file cannot pass by accident.
func parse(data []byte) (Tokenizer, error) {
	if len(data) == 0 {
		return nil, errors.New("empty file")
	}
	l2c, errL2C := parseLlama2C(data, 0)
	if errL2C == nil {
		return l2c, nil
	}
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '{' {
		return nil, errors.New("looks like a JSON file (HF tokenizer.json), which is not supported; use the model's tokenizer.model")
	}
	sp, errSP := parseSentencePiece(data)
	if errSP == nil {
		return sp, nil
	}
	return nil, fmt.Errorf("not a recognised tokenizer file: as llama2.c tokenizer.bin: %v; as SentencePiece model: %v", errL2C, errSP)
}

// FindInDir returns the tokenizer file of a Hugging Face style model
// directory: tokenizer.model first (the SentencePiece original), then
// tokenizer.json.
func FindInDir(dir string) (string, bool) {
	for _, name := range []string{"tokenizer.model", "tokenizer.json"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, true
		}
	}
	return "", false
}
