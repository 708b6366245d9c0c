package tokenizer

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
)

// llama3Ranks is the number of BPE ranks in Llama-3's tokenizer.model.
const llama3Ranks = 128000

// llama3Specials are the 256 special tokens Meta's reference tokenizer
// (meta-llama/llama-models, models/llama3/tokenizer.py) puts after the
// ranks, from id 128000: twelve named ones, the rest reserved.
func llama3Specials() []string {
	names := []string{
		"<|begin_of_text|>", "<|end_of_text|>",
		"<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
		"<|finetune_right_pad_id|>", "<|step_id|>",
		"<|start_header_id|>", "<|end_header_id|>",
		"<|eom_id|>", "<|eot_id|>", "<|python_tag|>", "<|image|>",
	}
	for i := 2; len(names) < 256; i++ {
		names = append(names, fmt.Sprintf("<|reserved_special_token_%d|>", i))
	}
	return names
}

// looksTiktoken reports whether data starts like a tiktoken ranks file: a
// base64 token, one space, a decimal rank, end of line.
func looksTiktoken(data []byte) bool {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	tok, rank, ok := bytes.Cut(bytes.TrimSuffix(line, []byte("\r")), []byte(" "))
	if !ok || len(tok) == 0 || len(rank) == 0 {
		return false
	}
	for _, c := range tok {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	for _, c := range rank {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseTiktoken reads a tiktoken ranks file ("base64-token rank" lines, as
// tiktoken's load_tiktoken_bpe does). The file carries neither the split
// regex nor the special tokens, so only Llama-3's (128,000 ranks) is
// accepted, with Meta's regex and specials; it encodes as tiktoken does
// (a piece that is a token is that token; otherwise byte-pair merging by
// rank), specials being matched in text as the Hugging Face conversion of
// this tokenizer matches them. BOS is <|begin_of_text|>, EOS <|end_of_text|>.
func parseTiktoken(data []byte) (*ByteBPE, error) {
	ranks, byRank, err := parseTiktokenRanks(data)
	if err != nil {
		return nil, err
	}
	t, err := newTiktoken(ranks, byRank, llama3Specials(), llama3Scanner{maxDigits: 3})
	if err != nil {
		return nil, err
	}
	if len(ranks) != llama3Ranks {
		return nil, fmt.Errorf("tiktoken file with %d ranks: only Llama-3's (%d ranks) is supported, since the file does not hold its split regex and special tokens", len(ranks), llama3Ranks)
	}
	return t, nil
}

// parseTiktokenRanks reads the "base64-token rank" lines; ranks must be
// 0..n-1, each token and rank once.
func parseTiktokenRanks(data []byte) (map[string]int32, []string, error) {
	maxRank := bytes.Count(data, []byte("\n")) + 1 // ranks are 0..lines-1
	ranks := make(map[string]int32, maxRank)
	var byRank []string
	for ln := 1; len(data) > 0; ln++ {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			continue
		}
		b64, num, ok := bytes.Cut(line, []byte(" "))
		if !ok {
			return nil, nil, fmt.Errorf("tiktoken line %d: want \"base64-token rank\"", ln)
		}
		tok, err := base64.StdEncoding.DecodeString(string(b64))
		if err != nil || len(tok) == 0 {
			return nil, nil, fmt.Errorf("tiktoken line %d: token %q is not base64 of a non-empty string", ln, b64)
		}
		rank, err := strconv.Atoi(string(num))
		if err != nil || rank < 0 || rank >= maxRank {
			return nil, nil, fmt.Errorf("tiktoken line %d: rank %q is not an integer in [0, %d) (ranks are 0..n-1)", ln, num, maxRank)
		}
		if _, dup := ranks[string(tok)]; dup {
			return nil, nil, fmt.Errorf("tiktoken line %d: token %q listed twice", ln, tok)
		}
		ranks[string(tok)] = int32(rank)
		for len(byRank) <= rank {
			byRank = append(byRank, "")
		}
		if byRank[rank] != "" {
			return nil, nil, fmt.Errorf("tiktoken line %d: rank %d given twice", ln, rank)
		}
		byRank[rank] = string(tok)
	}
	if len(ranks) != len(byRank) {
		return nil, nil, fmt.Errorf("tiktoken: %d tokens but ranks up to %d: ranks must be 0..n-1", len(ranks), len(byRank)-1)
	}
	if len(ranks) == 0 {
		return nil, nil, errors.New("tiktoken: no tokens")
	}
	return ranks, byRank, nil
}

// newTiktoken builds a tiktoken tokenizer: the specials get the ids after
// the ranks and are matched in text; the first two are BOS and EOS.
func newTiktoken(ranks map[string]int32, byRank []string, specials []string, split scanner) (*ByteBPE, error) {
	n := len(byRank)
	t := &ByteBPE{kind: "tiktoken", bos: n, eos: n + 1}
	m := &t.model
	m.tiktoken, m.wholeFirst, m.vocab = true, true, ranks
	for b := range 256 {
		id, ok := ranks[string([]byte{byte(b)})]
		if !ok {
			return nil, fmt.Errorf("tiktoken: no token for byte 0x%02X (all 256 single bytes are needed)", b)
		}
		m.byteID[b] = id
	}
	t.n = n + len(specials)
	t.text = append(byRank, specials...)
	added := make([]addedToken, len(specials))
	for i, s := range specials {
		added[i] = addedToken{ID: n + i, Content: s, Special: true}
	}
	t.added = newAddedMatcher(added, false)
	t.steps = []preStep{{sp: split}}
	return t, nil
}
