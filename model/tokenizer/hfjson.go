package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/text/unicode/norm"
)

// hfTokenizerJSON is the part of a tokenizers "tokenizer.json" this package
// reads (the format of tokenizers' serialization.rs); truncation and padding
// do not affect ids and are ignored.
type hfTokenizerJSON struct {
	AddedTokens   []addedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         json.RawMessage `json:"model"`
}

type hfBPEModel struct {
	Type                    *string         `json:"type"`
	Dropout                 *float64        `json:"dropout"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	Vocab                   map[string]int  `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
}

// typed is the "type" tag every component object carries.
type typed struct {
	Type string `json:"type"`
}

func isNull(raw json.RawMessage) bool {
	return len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

// parseTokenizerJSON reads a tokenizer.json; cfg is the tokenizer_config.json
// beside it (nil if none).
func parseTokenizerJSON(data []byte, cfg *hfConfig) (*ByteBPE, error) {
	var f hfTokenizerJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	sp, err := f.spec(cfg)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	t, err := buildByteBPE(sp)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	return t, nil
}

func (f *hfTokenizerJSON) spec(cfg *hfConfig) (bpeSpec, error) {
	sp := bpeSpec{kind: "hf-tokenizer-json", bos: -1}
	if isNull(f.Model) {
		return sp, errors.New("no model")
	}
	var ty struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(f.Model, &ty); err != nil {
		return sp, fmt.Errorf("model: %w", err)
	}
	if ty.Type != nil && *ty.Type != "BPE" {
		return sp, fmt.Errorf("model type %q not supported (only byte-level BPE)", *ty.Type)
	}
	var m hfBPEModel
	if err := json.Unmarshal(f.Model, &m); err != nil {
		return sp, fmt.Errorf("model: %w", err)
	}
	switch {
	case m.Type == nil && m.Merges == nil:
		return sp, errors.New("model has no type and no merges: not a BPE model")
	case m.Dropout != nil && *m.Dropout != 0:
		return sp, fmt.Errorf("BPE dropout %g not supported (encoding would be random)", *m.Dropout)
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "":
		return sp, errors.New("BPE continuing_subword_prefix not supported")
	case m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return sp, errors.New("BPE end_of_word_suffix not supported")
	case m.Vocab == nil:
		return sp, errors.New("model has no vocab")
	}
	merges, err := parseJSONMerges(m.Merges)
	if err != nil {
		return sp, err
	}
	sp.vocab, sp.merges, sp.ignoreMerges = m.Vocab, merges, m.IgnoreMerges
	if sp.norm, err = parseNormalizer(f.Normalizer); err != nil {
		return sp, err
	}
	if sp.steps, err = parsePreTokenizer(f.PreTokenizer); err != nil {
		return sp, err
	}
	if err := checkDecoder(f.Decoder); err != nil {
		return sp, err
	}
	if sp.bos, err = parsePostProcessor(f.PostProcessor); err != nil {
		return sp, err
	}
	sp.added = f.AddedTokens
	if cfg != nil {
		if err := cfg.apply(&sp); err != nil {
			return sp, err
		}
	}
	return sp, nil
}

// parseJSONMerges accepts both forms tokenizers writes: "a b" strings
// (before 0.20) and ["a", "b"] pairs.
func parseJSONMerges(raw json.RawMessage) ([][2]string, error) {
	if isNull(raw) {
		return nil, errors.New("model has no merges")
	}
	var pairs [][2]string
	if err := json.Unmarshal(raw, &pairs); err == nil {
		return pairs, nil
	}
	var lines []string
	if err := json.Unmarshal(raw, &lines); err != nil {
		return nil, errors.New(`merges: want a list of "a b" strings or of [a, b] pairs`)
	}
	pairs = make([][2]string, len(lines))
	for i, l := range lines {
		p, ok := parseMergeLine(l)
		if !ok {
			return nil, fmt.Errorf("merge %d %q: want two tokens separated by one space", i+1, l)
		}
		pairs[i] = p
	}
	return pairs, nil
}

// parseNormalizer supports the Unicode normal forms (Qwen2 uses NFC) and
// sequences of them.
func parseNormalizer(raw json.RawMessage) (func(string) string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var n struct {
		typed
		Normalizers []json.RawMessage `json:"normalizers"`
	}
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	forms := map[string]norm.Form{"NFC": norm.NFC, "NFD": norm.NFD, "NFKC": norm.NFKC, "NFKD": norm.NFKD}
	if f, ok := forms[n.Type]; ok {
		return f.String, nil
	}
	if n.Type != "Sequence" {
		return nil, fmt.Errorf("normalizer %q not supported (only NFC, NFD, NFKC, NFKD and Sequence)", n.Type)
	}
	var fs []func(string) string
	for _, sub := range n.Normalizers {
		f, err := parseNormalizer(sub)
		if err != nil {
			return nil, err
		}
		if f != nil {
			fs = append(fs, f)
		}
	}
	if len(fs) == 0 {
		return nil, nil
	}
	return func(s string) string {
		for _, f := range fs {
			s = f(s)
		}
		return s
	}, nil
}

// parsePreTokenizer turns the pre_tokenizer into steps. Byte-level BPE
// needs a ByteLevel pre-tokenizer, and it must come last: a split after it
// would see the byte symbols, which this package does not materialise.
func parsePreTokenizer(raw json.RawMessage) ([]preStep, error) {
	var p preTokParser
	if err := p.add(raw); err != nil {
		return nil, err
	}
	if !p.byteLevel {
		return nil, errors.New("no ByteLevel pre_tokenizer: only byte-level BPE is supported")
	}
	return p.steps, nil
}

type preTokParser struct {
	steps     []preStep
	byteLevel bool // a ByteLevel step has been added
}

// hfPreTokenizer holds the fields of every supported pre-tokenizer type.
type hfPreTokenizer struct {
	typed
	Pretokenizers   []json.RawMessage `json:"pretokenizers"`
	AddPrefixSpace  *bool             `json:"add_prefix_space"`
	UseRegex        *bool             `json:"use_regex"`
	IndividualDigit bool              `json:"individual_digits"`
	Pattern         *struct {
		Regex  *string `json:"Regex"`
		String *string `json:"String"`
	} `json:"pattern"`
	Behavior string `json:"behavior"`
	Invert   bool   `json:"invert"`
}

func (ps *preTokParser) add(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var p hfPreTokenizer
	if err := json.Unmarshal(raw, &p); err != nil {
		return fmt.Errorf("pre_tokenizer: %w", err)
	}
	if ps.byteLevel && p.Type != "Sequence" {
		return fmt.Errorf("pre_tokenizer %q after ByteLevel not supported", p.Type)
	}
	switch p.Type {
	case "Sequence":
		for _, sub := range p.Pretokenizers {
			if err := ps.add(sub); err != nil {
				return err
			}
		}
	case "ByteLevel":
		st := preStep{byteLevel: true, prefixSpace: p.AddPrefixSpace == nil || *p.AddPrefixSpace}
		if p.UseRegex == nil || *p.UseRegex {
			st.sp = gpt2Scanner{}
		}
		ps.steps = append(ps.steps, st)
		ps.byteLevel = true
	case "Split":
		st, err := splitStep(&p)
		if err != nil {
			return fmt.Errorf("pre_tokenizer Split: %w", err)
		}
		ps.steps = append(ps.steps, st)
	case "Digits":
		beh := behContiguous
		if p.IndividualDigit {
			beh = behIsolated
		}
		ps.steps = append(ps.steps, preStep{sp: digitSplitter{}, beh: beh})
	default:
		return fmt.Errorf("pre_tokenizer %q not supported (byte-level BPE: ByteLevel, Split, Digits, Sequence)", p.Type)
	}
	return nil
}

func splitStep(p *hfPreTokenizer) (preStep, error) {
	beh, ok := behaviors[p.Behavior]
	if !ok {
		return preStep{}, fmt.Errorf("behavior %q unknown", p.Behavior)
	}
	if p.Pattern == nil || (p.Pattern.Regex == nil) == (p.Pattern.String == nil) {
		return preStep{}, errors.New(`want a pattern {"Regex": …} or {"String": …}`)
	}
	var sp splitter
	var err error
	if p.Pattern.Regex != nil {
		sp, err = newSplitter(*p.Pattern.Regex, true)
	} else {
		sp, err = newSplitter(*p.Pattern.String, false)
	}
	return preStep{sp: sp, beh: beh, invert: p.Invert}, err
}

// checkDecoder accepts the ByteLevel decoder (alone or as a one-element
// sequence), the one byte-level BPE decodes with.
func checkDecoder(raw json.RawMessage) error {
	if isNull(raw) {
		return errors.New("no decoder: byte-level BPE needs the ByteLevel decoder")
	}
	var d struct {
		typed
		Decoders []json.RawMessage `json:"decoders"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return fmt.Errorf("decoder: %w", err)
	}
	switch {
	case d.Type == "ByteLevel":
		return nil
	case d.Type == "Sequence" && len(d.Decoders) == 1:
		return checkDecoder(d.Decoders[0])
	}
	return fmt.Errorf("decoder %q not supported (only ByteLevel)", d.Type)
}

// hfPostProcessor holds the fields of the supported post-processors.
type hfPostProcessor struct {
	typed
	Processors []json.RawMessage `json:"processors"`
	Single     []struct {
		SpecialToken *struct {
			ID string `json:"id"`
		} `json:"SpecialToken"`
		Sequence *struct {
			ID string `json:"id"`
		} `json:"Sequence"`
	} `json:"single"`
	SpecialTokens map[string]struct {
		IDs []int `json:"ids"`
	} `json:"special_tokens"`
}

// parsePostProcessor returns the token a TemplateProcessing puts before
// the text (-1 if none). ByteLevel post-processing only adjusts offsets.
func parsePostProcessor(raw json.RawMessage) (int, error) {
	if isNull(raw) {
		return -1, nil
	}
	var p hfPostProcessor
	if err := json.Unmarshal(raw, &p); err != nil {
		return -1, fmt.Errorf("post_processor: %w", err)
	}
	switch p.Type {
	case "ByteLevel":
		return -1, nil
	case "Sequence":
		bos := -1
		for _, sub := range p.Processors {
			b, err := parsePostProcessor(sub)
			if err != nil {
				return -1, err
			}
			if b >= 0 {
				if bos >= 0 {
					return -1, errors.New("post_processor: two templates add tokens")
				}
				bos = b
			}
		}
		return bos, nil
	case "TemplateProcessing":
		return templateBOS(&p)
	}
	return -1, fmt.Errorf("post_processor %q not supported (ByteLevel, TemplateProcessing, Sequence)", p.Type)
}

// templateBOS reads a TemplateProcessing's single-sequence template: at
// most one token before the text ($A), none after it.
func templateBOS(p *hfPostProcessor) (int, error) {
	var prefix []int
	seenText := false
	for _, piece := range p.Single {
		switch {
		case piece.Sequence != nil:
			seenText = true
		case piece.SpecialToken != nil && !seenText:
			st, ok := p.SpecialTokens[piece.SpecialToken.ID]
			if !ok {
				return -1, fmt.Errorf("post_processor: template token %q not in special_tokens", piece.SpecialToken.ID)
			}
			prefix = append(prefix, st.IDs...)
		case piece.SpecialToken != nil:
			return -1, fmt.Errorf("post_processor TemplateProcessing adds %q after the text: not supported", piece.SpecialToken.ID)
		}
	}
	switch {
	case len(prefix) == 0:
		return -1, nil
	case len(prefix) > 1:
		return -1, fmt.Errorf("post_processor TemplateProcessing puts %d tokens before the text: only one (BOS) is supported", len(prefix))
	case prefix[0] < 0:
		return -1, fmt.Errorf("post_processor: negative id %d", prefix[0])
	}
	return prefix[0], nil
}
