// Package eval holds the evaluation and calibration protocols: how a text
// file becomes token windows (DESIGN §2.6), perplexity, and the calibration
// samplers used by the pruning methods.
package eval

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// Tokenizer is what the protocols need from a tokenizer.
type Tokenizer interface {
	Encode(text string, bos, eos bool) []int
}

// Protocol names.
const (
	WikiText2 = "wikitext2"
	C4        = "c4"
	Lines     = "lines"
)

// Source is a text file read for a protocol, with its identity.
type Source struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Bytes  int    `json:"bytes"`
	data   []byte
}

// ReadSource reads a whole text file and hashes it.
func ReadSource(path string) (*Source, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return &Source{Path: path, SHA256: hex.EncodeToString(sum[:]), Bytes: len(b), data: b}, nil
}

// WikiTextRows returns the rows of wiki.test.raw as the Hugging Face
// wikitext-2-raw-v1 dataset holds them: a line with any non-space character
// keeps its full text and newline, a blank line becomes "".
func WikiTextRows(data []byte) []string {
	var rows []string
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		line := data
		if i >= 0 {
			line, data = data[:i+1], data[i+1:]
		} else {
			data = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			rows = append(rows, "")
		} else {
			rows = append(rows, string(line))
		}
	}
	return rows
}

// WikiTextStream tokenizes the rows joined with "\n\n", once, with BOS.
func WikiTextStream(tok Tokenizer, data []byte) []int32 {
	return toInt32(tok.Encode(strings.Join(WikiTextRows(data), "\n\n"), true, false))
}

// LineDocuments returns the trimmed non-empty lines of a text file.
func LineDocuments(data []byte) []string {
	var docs []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			docs = append(docs, s)
		}
	}
	return docs
}

// LinesStream encodes every document with a BOS in front and concatenates.
func LinesStream(tok Tokenizer, data []byte) []int32 {
	var ids []int32
	for _, d := range LineDocuments(data) {
		for _, id := range tok.Encode(d, true, false) {
			ids = append(ids, int32(id))
		}
	}
	return ids
}

// JSONLTexts returns the "text" field of every line of a C4-style JSONL file.
func JSONLTexts(data []byte) ([]string, error) {
	var texts []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var doc struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(line, &doc); err != nil {
			return nil, fmt.Errorf("line %d is not JSON: %w", n, err)
		}
		if doc.Text == nil {
			return nil, fmt.Errorf("line %d has no \"text\" field", n)
		}
		texts = append(texts, *doc.Text)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(texts) == 0 {
		return nil, fmt.Errorf("no JSON lines with a \"text\" field")
	}
	return texts, nil
}

// Split cuts a token stream into non-overlapping windows of seqlen tokens;
// the remainder is dropped.
func Split(stream []int32, seqlen int) [][]int32 {
	var ws [][]int32
	for i := 0; i+seqlen <= len(stream); i += seqlen {
		ws = append(ws, stream[i:i+seqlen])
	}
	return ws
}

func toInt32(ids []int) []int32 {
	out := make([]int32, len(ids))
	for i, v := range ids {
		out[i] = int32(v)
	}
	return out
}
