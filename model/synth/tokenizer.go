package synth

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/unipruning/unipruning/model/tokenizer"
)

// TokenizerFiles are the files a model directory's tokenizer may consist
// of; those present are copied unchanged.
var TokenizerFiles = []string{
	"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
	"vocab.json", "merges.txt", "tokenizer.model", "tokenizer.bin",
}

// TokenizerInfo is what a config.json needs to know about a tokenizer.
type TokenizerInfo struct {
	Kind     string   // tokenizer.json, vocab+merges, tiktoken, sentencepiece, llama2c
	Vocab    int      // 1 + the largest token id (added/special tokens included)
	BOS, EOS int      // -1 when the tokenizer names none
	Files    []string // the files found (base names)
}

// ReadTokenizerInfo inspects the tokenizer files in dir: its vocabulary
// size and BOS/EOS ids. It only counts ids; encoding is the tokenizer
// package's business.
func ReadTokenizerInfo(dir string) (*TokenizerInfo, error) {
	info := &TokenizerInfo{BOS: -1, EOS: -1}
	for _, f := range TokenizerFiles {
		if st, err := os.Stat(filepath.Join(dir, f)); err == nil && st.Mode().IsRegular() {
			info.Files = append(info.Files, f)
		}
	}
	has := func(f string) bool {
		for _, g := range info.Files {
			if g == f {
				return true
			}
		}
		return false
	}
	ids := map[string]int{} // token text → id, for resolving bos/eos names
	var err error
	switch {
	case has("tokenizer.json"):
		info.Kind, err = "tokenizer.json", readTokenizerJSON(filepath.Join(dir, "tokenizer.json"), ids)
	case has("vocab.json"):
		if !has("merges.txt") {
			return nil, fmt.Errorf("%s has vocab.json but no merges.txt", dir)
		}
		info.Kind, err = "vocab+merges", readJSONFile(filepath.Join(dir, "vocab.json"), &ids)
	case has("tokenizer.model") && isTiktoken(filepath.Join(dir, "tokenizer.model")):
		info.Kind, err = "tiktoken", readTiktoken(filepath.Join(dir, "tokenizer.model"), ids)
	case has("tokenizer.model") || has("tokenizer.bin"):
		name := "tokenizer.model"
		if !has(name) {
			name = "tokenizer.bin"
		}
		tok, lerr := tokenizer.Load(filepath.Join(dir, name))
		if lerr != nil {
			return nil, lerr
		}
		info.Kind, info.Vocab, info.BOS, info.EOS = tok.Kind(), tok.VocabSize(), tok.BOS(), tok.EOS()
		return info, nil
	default:
		return nil, fmt.Errorf("no tokenizer files in %s (looked for %s)", dir, strings.Join(TokenizerFiles, ", "))
	}
	if err != nil {
		return nil, err
	}
	if has("tokenizer_config.json") {
		if err := readTokenizerConfig(filepath.Join(dir, "tokenizer_config.json"), ids, info); err != nil {
			return nil, err
		}
	}
	for _, id := range ids {
		info.Vocab = max(info.Vocab, id+1)
	}
	if info.Vocab == 0 {
		return nil, fmt.Errorf("%s: the tokenizer has no tokens", dir)
	}
	if info.Kind == "tiktoken" && info.BOS < 0 {
		// Meta's Llama-3 tokenizer: <|begin_of_text|>, <|end_of_text|>
		info.BOS, info.EOS = ids["<|begin_of_text|>"], ids["<|end_of_text|>"]
	}
	// Qwen names no BOS and GPT-2 neither; their config.json files use
	// <|endoftext|> for whichever is missing.
	if id, ok := ids["<|endoftext|>"]; ok {
		if info.BOS < 0 {
			info.BOS = id
		}
		if info.EOS < 0 {
			info.EOS = id
		}
	}
	return info, nil
}

func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func readTokenizerJSON(path string, ids map[string]int) error {
	var tj struct {
		Model struct {
			Type  string         `json:"type"`
			Vocab map[string]int `json:"vocab"`
		} `json:"model"`
		Added []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
		} `json:"added_tokens"`
	}
	if err := readJSONFile(path, &tj); err != nil {
		return err
	}
	for t, id := range tj.Model.Vocab {
		ids[t] = id
	}
	for _, a := range tj.Added {
		ids[a.Content] = a.ID
	}
	return nil
}

// readTokenizerConfig adds the added_tokens_decoder entries and resolves
// bos_token / eos_token (a string or {"content": …}).
func readTokenizerConfig(path string, ids map[string]int, info *TokenizerInfo) error {
	var tc struct {
		Added map[string]struct {
			Content string `json:"content"`
		} `json:"added_tokens_decoder"`
		BOS json.RawMessage `json:"bos_token"`
		EOS json.RawMessage `json:"eos_token"`
	}
	if err := readJSONFile(path, &tc); err != nil {
		return err
	}
	for k, a := range tc.Added {
		id, err := strconv.Atoi(k)
		if err != nil {
			return fmt.Errorf("%s: added token id %q is not a number", path, k)
		}
		ids[a.Content] = id
	}
	for _, p := range []struct {
		raw json.RawMessage
		dst *int
	}{{tc.BOS, &info.BOS}, {tc.EOS, &info.EOS}} {
		name := tokenName(p.raw)
		if name == "" {
			continue
		}
		id, ok := ids[name]
		if !ok {
			return fmt.Errorf("%s: special token %q is not in the vocabulary", path, name)
		}
		*p.dst = id
	}
	return nil
}

func tokenName(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct {
		Content string `json:"content"`
	}
	if json.Unmarshal(raw, &o) == nil {
		return o.Content
	}
	return ""
}

// isTiktoken tells a tiktoken rank file ("base64 rank" lines) from a
// SentencePiece protobuf of the same name.
func isTiktoken(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && err != io.EOF {
		return false
	}
	tok, rank, ok := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
	_, derr := base64.StdEncoding.DecodeString(tok)
	_, rerr := strconv.Atoi(rank)
	return ok && derr == nil && rerr == nil
}

// readTiktoken counts the ranks of a Llama-3 tokenizer.model and adds the
// 256 special tokens Meta's tokenizer places right after them (the first two
// are <|begin_of_text|> and <|end_of_text|>).
func readTiktoken(path string, ids map[string]int) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	n := 0
	for i, line := range bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n")) {
		tok, rank, ok := bytes.Cut(line, []byte(" "))
		r, rerr := strconv.Atoi(string(rank))
		if !ok || rerr != nil {
			return fmt.Errorf("%s:%d: not a \"base64 rank\" line", path, i+1)
		}
		ids[string(tok)] = r
		n = max(n, r+1)
	}
	ids["<|begin_of_text|>"], ids["<|end_of_text|>"] = n, n+1
	ids["<|reserved_special_token_255|>"] = n + 255 // the last of the 256
	return nil
}

// CopyTokenizer copies the tokenizer files of src into dst and returns the
// tokenizer's info.
func CopyTokenizer(src, dst string) (*TokenizerInfo, error) {
	info, err := ReadTokenizerInfo(src)
	if err != nil {
		return nil, err
	}
	for _, f := range info.Files {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
			return nil, err
		}
	}
	return info, nil
}
