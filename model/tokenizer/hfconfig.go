package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// hfConfig is the part of tokenizer_config.json (and special_tokens_map.json)
// that changes ids.
type hfConfig struct {
	AddBOS       *bool                 `json:"add_bos_token"`
	AddPrefix    *bool                 `json:"add_prefix_space"`
	BOS          tokenName             `json:"bos_token"`
	EOS          tokenName             `json:"eos_token"`
	UNK          tokenName             `json:"unk_token"`
	PAD          tokenName             `json:"pad_token"`
	Class        string                `json:"tokenizer_class"`
	SplitSpecial bool                  `json:"split_special_tokens"`
	Added        map[string]addedToken `json:"added_tokens_decoder"`
}

// tokenName is a special token given as a string, null, or an AddedToken
// object {"content": …}.
type tokenName string

func (n *tokenName) UnmarshalJSON(b []byte) error {
	if isNull(b) {
		*n = ""
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*n = tokenName(s)
		return nil
	}
	var o struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return errors.New("special token: want a string or an object with content")
	}
	*n = tokenName(o.Content)
	return nil
}

// readHFConfig reads tokenizer_config.json from dir, with special token
// names from special_tokens_map.json where the config has none. A missing
// config is not an error (nil).
func readHFConfig(dir string) (*hfConfig, error) {
	if dir == "" {
		return nil, nil
	}
	var cfg *hfConfig
	for _, name := range []string{"tokenizer_config.json", "special_tokens_map.json"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var c hfConfig
		if err := json.Unmarshal(data, &c); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if cfg == nil {
			cfg = &c
			continue
		}
		for _, p := range [][2]*tokenName{{&cfg.BOS, &c.BOS}, {&cfg.EOS, &c.EOS}, {&cfg.UNK, &c.UNK}, {&cfg.PAD, &c.PAD}} {
			if *p[0] == "" {
				*p[0] = *p[1]
			}
		}
	}
	return cfg, nil
}

// apply makes the config's choices: special tokens it names are matched in
// text; an explicit add_bos_token overrides the post-processor (as
// transformers' LlamaTokenizerFast does); eos_token names EOS; and
// add_prefix_space, when given, sets the ByteLevel pre-tokenizer's.
func (c *hfConfig) apply(sp *bpeSpec) error {
	sp.splitSpecial = c.SplitSpecial
	var fromCfg []addedToken
	for id, a := range c.Added {
		n, err := strconv.Atoi(id)
		if err != nil {
			return fmt.Errorf("tokenizer_config.json: added_tokens_decoder key %q is not an id", id)
		}
		if lookupAdded(sp.added, a.Content) < 0 {
			a.ID = n
			fromCfg = append(fromCfg, a)
		}
	}
	slices.SortFunc(fromCfg, func(a, b addedToken) int { return a.ID - b.ID })
	sp.added = append(sp.added, fromCfg...)
	sp.added = withConfigSpecials(sp.added, sp.vocab, string(c.BOS), string(c.EOS), string(c.UNK), string(c.PAD))
	if c.AddBOS != nil {
		sp.bos = -1
		if *c.AddBOS {
			if c.BOS == "" {
				return errors.New("tokenizer_config.json: add_bos_token is set but bos_token is not")
			}
			id, ok := lookupName(sp, string(c.BOS))
			if !ok {
				return fmt.Errorf("tokenizer_config.json: bos_token %q is not a token", c.BOS)
			}
			sp.bos = id
		}
	}
	if c.EOS != "" {
		sp.eosName = string(c.EOS)
	}
	if c.AddPrefix != nil {
		for i := range sp.steps {
			if sp.steps[i].byteLevel {
				sp.steps[i].prefixSpace = *c.AddPrefix
			}
		}
	}
	return nil
}

// lookupAdded returns the index of the added token with this content, -1
// if none.
func lookupAdded(added []addedToken, content string) int {
	return slices.IndexFunc(added, func(a addedToken) bool { return a.Content == content })
}

// lookupName finds a token by its content: an added token, else a
// vocabulary entry (in its byte-level spelling).
func lookupName(sp *bpeSpec, name string) (int, bool) {
	if i := lookupAdded(sp.added, name); i >= 0 {
		return sp.added[i].ID, true
	}
	id, ok := sp.vocab[name]
	return id, ok
}
