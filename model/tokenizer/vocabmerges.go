package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// parseVocabMerges builds the tokenizer of a directory holding vocab.json
// and merges.txt, as transformers' slow tokenizer classes define it (their
// fast versions convert to the same tokenizers pipeline):
//   - Qwen2Tokenizer: NFC, then PatternQwen2, then byte-level BPE;
//   - GPT2Tokenizer (also when tokenizer_config.json is absent or names no
//     class): GPT-2's ByteLevel regex, then byte-level BPE; <|endoftext|> is
//     its BOS/EOS name.
//
// Neither adds BOS unless the config sets add_bos_token. Added tokens come
// from the config's added_tokens_decoder and special token names.
func parseVocabMerges(vocabJSON []byte, dir string) (*ByteBPE, error) {
	var vocab map[string]int
	if err := json.Unmarshal(vocabJSON, &vocab); err != nil {
		return nil, fmt.Errorf("vocab.json: %w", err)
	}
	mf, err := os.ReadFile(filepath.Join(dir, "merges.txt"))
	if err != nil {
		return nil, fmt.Errorf("vocab.json needs merges.txt beside it: %w", err)
	}
	merges, err := parseMergesTxt(mf)
	if err != nil {
		return nil, err
	}
	cfg, err := readHFConfig(dir)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		cfg = &hfConfig{}
	}
	sp := bpeSpec{kind: "hf-vocab-merges", vocab: vocab, merges: merges, bos: -1}
	// The classes' default special tokens, where the vocabulary has them.
	byDefault := func(n *tokenName, name string) {
		_, inVocab := vocab[name]
		inAdded := false
		for _, a := range cfg.Added {
			inAdded = inAdded || a.Content == name
		}
		if *n == "" && (inVocab || inAdded) {
			*n = tokenName(name)
		}
	}
	switch cfg.Class {
	case "Qwen2Tokenizer", "Qwen2TokenizerFast":
		sp.norm = norm.NFC.String
		sp.steps = []preStep{{sp: llama3Scanner{maxDigits: 1}}, {byteLevel: true}}
		byDefault(&cfg.EOS, "<|endoftext|>")
	case "GPT2Tokenizer", "GPT2TokenizerFast", "":
		sp.steps = []preStep{{sp: gpt2Scanner{}, byteLevel: true}}
		for _, n := range []*tokenName{&cfg.BOS, &cfg.EOS, &cfg.UNK} {
			byDefault(n, "<|endoftext|>")
		}
	default:
		return nil, fmt.Errorf("tokenizer_config.json: tokenizer_class %q not supported with vocab.json + merges.txt (Qwen2Tokenizer, GPT2Tokenizer)", cfg.Class)
	}
	if err := cfg.apply(&sp); err != nil {
		return nil, err
	}
	t, err := buildByteBPE(sp)
	if err != nil {
		return nil, fmt.Errorf("vocab.json + merges.txt: %w", err)
	}
	return t, nil
}

// parseMergesTxt reads merges.txt as tokenizers does: "#version" lines are
// skipped, every other line is two tokens separated by one space.
func parseMergesTxt(data []byte) ([][2]string, error) {
	var merges [][2]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), maxTokenLen*2+16)
	for line := 1; sc.Scan(); line++ {
		l := strings.TrimSuffix(sc.Text(), "\r")
		if strings.HasPrefix(l, "#version") {
			continue
		}
		p, ok := parseMergeLine(l)
		if !ok {
			return nil, fmt.Errorf("merges.txt line %d %q: want two tokens separated by one space", line, l)
		}
		merges = append(merges, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("merges.txt: %w", err)
	}
	return merges, nil
}
