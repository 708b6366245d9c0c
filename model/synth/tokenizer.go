package synth

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/unipruning/unipruning/model/tokenizer"
)

// TokenizerInfo is what a config.json needs to know about a tokenizer.
type TokenizerInfo struct {
	Kind     string   // as tokenizer.Tokenizer.Kind reports it
	Vocab    int      // the tokenizer's ids (added and special tokens included)
	BOS, EOS int      // for config.json; -1 when the tokenizer names none
	Files    []string // the files to copy (paths)
}

// configFiles go with any tokenizer of a model directory when present.
var configFiles = []string{"tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"}

// ReadTokenizerInfo loads the tokenizer of a model-style directory (as
// model directories hold them: tokenizer.model, tokenizer.json, vocab.json
// + merges.txt, or a llama2.c tokenizer.bin) with the tokenizer package and
// reports its size and BOS/EOS. A tokenizer that adds no BOS (Qwen, GPT-2)
// gets its EOS as config.json's bos_token_id, as those families' configs
// reuse <|endoftext|>.
func ReadTokenizerInfo(dir string) (*TokenizerInfo, error) {
	path, ok := tokenizer.FindInDir(dir)
	if !ok {
		if p := filepath.Join(dir, "tokenizer.bin"); isFile(p) {
			path, ok = p, true
		}
	}
	if !ok {
		return nil, fmt.Errorf("no tokenizer in %s (looked for tokenizer.model, tokenizer.json, vocab.json + merges.txt, tokenizer.bin)", dir)
	}
	tok, err := tokenizer.Load(path)
	if err != nil {
		return nil, err
	}
	info := &TokenizerInfo{Kind: tok.Kind(), Vocab: tok.VocabSize(), BOS: tok.BOS(), EOS: tok.EOS(), Files: tokenizer.Files(path)}
	if info.BOS < 0 {
		info.BOS = info.EOS
	}
	for _, n := range configFiles {
		if p := filepath.Join(dir, n); isFile(p) && !slices.Contains(info.Files, p) {
			info.Files = append(info.Files, p)
		}
	}
	return info, nil
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// CopyTokenizer copies the tokenizer files of src into dst and returns the
// tokenizer's info.
func CopyTokenizer(src, dst string) (*TokenizerInfo, error) {
	info, err := ReadTokenizerInfo(src)
	if err != nil {
		return nil, err
	}
	for _, f := range info.Files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o644); err != nil {
			return nil, err
		}
	}
	return info, nil
}
