// Package model reads and writes LLaMA-family checkpoints: Hugging Face
// directories (config.json + safetensors) and llama2.c .bin files. It maps
// both onto one Config and one set of canonical (Hugging Face) tensor names,
// so the rest of the system never cares which format a model came in.
package model

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
)

// RopeScaling describes a non-default RoPE frequency schedule.
type RopeScaling struct {
	Type                          string  `json:"type"` // "llama3" or "linear"
	Factor                        float64 `json:"factor"`
	LowFreqFactor                 float64 `json:"low_freq_factor"`
	HighFreqFactor                float64 `json:"high_freq_factor"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings"`
}

// Config is the architecture of a LLaMA-family decoder.
type Config struct {
	Arch      string       `json:"arch"` // LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, llama2c
	Dim       int          `json:"dim"`
	Hidden    int          `json:"hidden"` // MLP intermediate size
	Layers    int          `json:"layers"`
	Heads     int          `json:"heads"`
	KVHeads   int          `json:"kv_heads"`
	HeadDim   int          `json:"head_dim"`
	Vocab     int          `json:"vocab"`
	MaxSeq    int          `json:"max_seq"`
	NormEps   float64      `json:"norm_eps"`
	RopeTheta float64      `json:"rope_theta"`
	Scaling   *RopeScaling `json:"rope_scaling,omitempty"`
	// RopeInterleaved selects llama2.c's rotation of pairs (2i, 2i+1);
	// false is Hugging Face's rotation of (i, i+HeadDim/2).
	RopeInterleaved bool `json:"rope_interleaved"`
	TiedHead        bool `json:"tied_head"`
	QKVBias         bool `json:"qkv_bias"` // Qwen2, or attention_bias
	OBias           bool `json:"o_bias"`   // attention_bias (LLaMA, Qwen3) also biases o_proj
	// QKNorm applies an RMSNorm of width HeadDim to every query and key head
	// after the projection and before RoPE (Qwen3's q_norm / k_norm).
	QKNorm bool `json:"qk_norm,omitempty"`
	// SlidingWindow: a query sees only the last SlidingWindow keys (itself
	// included), as Mistral's sliding_window; 0 = full causal attention.
	SlidingWindow int `json:"sliding_window,omitempty"`
	BOS           int `json:"bos"`
	EOS           int `json:"eos"`
	// DType is the storage dtype of the checkpoint's weights ("F32", "BF16", "F16").
	DType string `json:"dtype"`
}

// QDim is the width of the concatenated query heads.
func (c *Config) QDim() int { return c.Heads * c.HeadDim }

// KVDim is the width of the concatenated key (or value) heads.
func (c *Config) KVDim() int { return c.KVHeads * c.HeadDim }

// LayerParams counts one decoder layer's parameters: the target matrices
// (the seven linear layers' weights), and the rest (its norms, Qwen3's
// per-head q/k norms and the biases the family has).
func (c *Config) LayerParams() (matrices, other int64) {
	other = 2 * int64(c.Dim)
	if c.QKNorm {
		other += 2 * int64(c.HeadDim)
	}
	for m := Matrix(0); m < NumMatrices; m++ {
		out, in := m.Shape(c)
		matrices += int64(out) * int64(in)
		if c.HasBias(m) {
			other += int64(out)
		}
	}
	return matrices, other
}

// HasBias reports whether matrix m of every layer has a bias (QKVBias:
// Qwen2's q, k, v; OBias: o).
func (c *Config) HasBias(m Matrix) bool {
	return (c.QKVBias && m <= V) || (c.OBias && m == O)
}

// Params counts the model's parameters (a tied head once).
func (c *Config) Params() int64 {
	embed := int64(c.Vocab) * int64(c.Dim)
	n := embed + int64(c.Dim) // embedding and the final norm
	if !c.TiedHead {
		n += embed
	}
	mat, other := c.LayerParams()
	return n + int64(c.Layers)*(mat+other)
}

// Validate rejects configurations the engine cannot run, with the reason.
func (c *Config) Validate() error {
	switch {
	case c.Dim <= 0 || c.Hidden <= 0 || c.Layers <= 0 || c.Vocab <= 0:
		return fmt.Errorf("config: dim, intermediate size, layers and vocab must be positive (got %d, %d, %d, %d)", c.Dim, c.Hidden, c.Layers, c.Vocab)
	case c.Heads <= 0 || c.KVHeads <= 0 || c.HeadDim <= 0:
		return fmt.Errorf("config: heads (%d), kv heads (%d) and head_dim (%d) must be positive", c.Heads, c.KVHeads, c.HeadDim)
	case c.Heads%c.KVHeads != 0:
		return fmt.Errorf("config: %d attention heads are not a multiple of %d key/value heads", c.Heads, c.KVHeads)
	case c.HeadDim%2 != 0:
		return fmt.Errorf("config: head_dim %d must be even for RoPE", c.HeadDim)
	case !(c.NormEps > 0) || !(c.RopeTheta > 0):
		return fmt.Errorf("config: rms_norm_eps (%g) and rope_theta (%g) must be positive", c.NormEps, c.RopeTheta)
	case c.MaxSeq <= 0:
		return fmt.Errorf("config: max_position_embeddings must be positive (got %d)", c.MaxSeq)
	}
	if s := c.Scaling; s != nil {
		switch s.Type {
		case "linear":
			if !(s.Factor > 0) {
				return fmt.Errorf("config: rope_scaling linear needs factor > 0")
			}
		case "llama3":
			if !(s.Factor > 0) || !(s.LowFreqFactor > 0) || !(s.HighFreqFactor > s.LowFreqFactor) || s.OriginalMaxPositionEmbeddings <= 0 {
				return fmt.Errorf("config: rope_scaling llama3 needs factor > 0, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0")
			}
		default:
			return fmt.Errorf("config: rope_scaling type %q is not supported (supported: default, linear, llama3)", s.Type)
		}
	}
	return nil
}

// InvFreq returns the RoPE inverse frequencies, HeadDim/2 of them, with
// any rope_scaling applied (llama3 follows transformers'
// _compute_llama3_parameters).
func (c *Config) InvFreq() []float64 {
	half := c.HeadDim / 2
	inv := make([]float64, half)
	for i := range inv {
		inv[i] = 1 / math.Pow(c.RopeTheta, float64(2*i)/float64(c.HeadDim))
	}
	s := c.Scaling
	if s == nil {
		return inv
	}
	if s.Type == "linear" {
		for i := range inv {
			inv[i] /= s.Factor
		}
		return inv
	}
	old := float64(s.OriginalMaxPositionEmbeddings)
	lowWave, highWave := old/s.LowFreqFactor, old/s.HighFreqFactor
	for i, f := range inv {
		wave := 2 * math.Pi / f
		switch {
		case wave < highWave: // high frequency: unchanged
		case wave > lowWave: // low frequency: fully scaled
			inv[i] = f / s.Factor
		default: // in between: interpolate smoothly
			smooth := (old/wave - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
			inv[i] = (1-smooth)*f/s.Factor + smooth*f
		}
	}
	return inv
}

// hfConfig mirrors the config.json fields we read. Pointers tell "absent"
// from zero.
type hfConfig struct {
	Architectures     []string        `json:"architectures"`
	ModelType         string          `json:"model_type"`
	HiddenSize        int             `json:"hidden_size"`
	IntermediateSize  int             `json:"intermediate_size"`
	NumLayers         int             `json:"num_hidden_layers"`
	NumHeads          int             `json:"num_attention_heads"`
	NumKVHeads        *int            `json:"num_key_value_heads"`
	HeadDim           *int            `json:"head_dim"`
	VocabSize         int             `json:"vocab_size"`
	MaxPos            int             `json:"max_position_embeddings"`
	RMSNormEps        float64         `json:"rms_norm_eps"`
	RopeTheta         *float64        `json:"rope_theta"`
	RopeScaling       json.RawMessage `json:"rope_scaling"`
	RopeParameters    json.RawMessage `json:"rope_parameters"`
	TieWordEmbeddings *bool           `json:"tie_word_embeddings"`
	AttentionBias     bool            `json:"attention_bias"`
	MLPBias           bool            `json:"mlp_bias"`
	HiddenAct         string          `json:"hidden_act"`
	SlidingWindow     json.RawMessage `json:"sliding_window"` // absent, null or an int
	UseSlidingWindow  bool            `json:"use_sliding_window"`
	MaxWindowLayers   *int            `json:"max_window_layers"`
	LayerTypes        []string        `json:"layer_types"`
	BOS               any             `json:"bos_token_id"`
	EOS               any             `json:"eos_token_id"`
	TorchDType        string          `json:"torch_dtype"`
	DType             string          `json:"dtype"`
}

// ReadHFConfig parses a Hugging Face config.json.
func ReadHFConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseHFConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseHFConfig parses the bytes of a Hugging Face config.json.
func ParseHFConfig(b []byte) (*Config, error) {
	var h hfConfig
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("config.json is not valid JSON: %w", err)
	}
	arch, err := hfArch(&h)
	if err != nil {
		return nil, err
	}
	if h.HiddenAct != "" && h.HiddenAct != "silu" {
		return nil, fmt.Errorf("config: hidden_act %q is not supported (only silu/SwiGLU)", h.HiddenAct)
	}
	if h.MLPBias {
		return nil, fmt.Errorf("config: mlp_bias=true is not supported")
	}
	c := &Config{
		Arch: arch, Dim: h.HiddenSize, Hidden: h.IntermediateSize, Layers: h.NumLayers,
		Heads: h.NumHeads, KVHeads: h.NumHeads, Vocab: h.VocabSize, MaxSeq: h.MaxPos,
		NormEps: h.RMSNormEps, RopeTheta: 10000, TiedHead: false,
		QKVBias: arch == "Qwen2ForCausalLM" || h.AttentionBias, OBias: h.AttentionBias && arch != "Qwen2ForCausalLM",
		QKNorm: arch == "Qwen3ForCausalLM",
		BOS:    tokenID(h.BOS, 1), EOS: tokenID(h.EOS, 2), DType: hfDType(h.TorchDType, h.DType),
	}
	if h.NumKVHeads != nil {
		c.KVHeads = *h.NumKVHeads
	}
	if h.NumHeads > 0 {
		c.HeadDim = h.HiddenSize / h.NumHeads
	}
	if arch == "Qwen3ForCausalLM" {
		c.HeadDim = 128 // Qwen3Config's default: head_dim does not follow hidden_size
	}
	if h.HeadDim != nil && *h.HeadDim > 0 {
		c.HeadDim = *h.HeadDim
	}
	if h.TieWordEmbeddings != nil {
		c.TiedHead = *h.TieWordEmbeddings
	}
	if c.NormEps == 0 {
		c.NormEps = 1e-6
	}
	if err := readRope(&h, c); err != nil {
		return nil, err
	}
	if err := readSlidingWindow(&h, c); err != nil {
		return nil, err
	}
	return c, c.Validate()
}

// readSlidingWindow follows transformers: Mistral attends within
// sliding_window on every layer (MistralConfig's default is 4096 when the key
// is absent; null turns it off); Qwen2/Qwen3 only when use_sliding_window is
// set, and then only on layers ≥ max_window_layers, which this engine does
// not implement, so such configs are refused rather than run wrongly.
func readSlidingWindow(h *hfConfig, c *Config) error {
	for i, t := range h.LayerTypes {
		if t != "full_attention" {
			return fmt.Errorf("config: layer %d has layer type %q; only full_attention layers are supported (per-layer sliding windows are not)", i, t)
		}
	}
	window := 0
	if raw := h.SlidingWindow; len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &window); err != nil {
			return fmt.Errorf("config: sliding_window %s is not an integer", raw)
		}
	}
	switch c.Arch {
	case "MistralForCausalLM":
		if len(h.SlidingWindow) == 0 {
			window = 4096
		}
		if window > 0 {
			c.SlidingWindow = window
		}
	case "Qwen2ForCausalLM", "Qwen3ForCausalLM":
		maxWindow := 28 // Qwen2Config / Qwen3Config default
		if h.MaxWindowLayers != nil {
			maxWindow = *h.MaxWindowLayers
		}
		if h.UseSlidingWindow && window > 0 && maxWindow < c.Layers {
			return fmt.Errorf("config: use_sliding_window=true (window %d on layers %d..%d) is not supported; only full attention is", window, maxWindow, c.Layers-1)
		}
	}
	return nil
}

func hfArch(h *hfConfig) (string, error) {
	if len(h.Architectures) == 0 {
		return "", fmt.Errorf("config: no \"architectures\" entry (model_type %q)", h.ModelType)
	}
	switch a := h.Architectures[0]; a {
	case "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM":
		return a, nil
	default:
		return "", fmt.Errorf("config: architecture %q is not supported (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)", a)
	}
}

// readRope accepts both the transformers-5 "rope_parameters" object and the
// older top-level rope_theta / rope_scaling keys.
func readRope(h *hfConfig, c *Config) error {
	if h.RopeTheta != nil {
		c.RopeTheta = *h.RopeTheta
	}
	for _, raw := range []json.RawMessage{h.RopeScaling, h.RopeParameters} {
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		var p struct {
			RopeType string   `json:"rope_type"`
			Type     string   `json:"type"`
			Theta    *float64 `json:"rope_theta"`
			RopeScaling
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("config: rope settings are malformed: %w", err)
		}
		if p.Theta != nil {
			c.RopeTheta = *p.Theta
		}
		kind := p.RopeType
		if kind == "" {
			kind = p.Type
		}
		switch kind {
		case "", "default":
		default:
			s := p.RopeScaling
			s.Type = kind
			c.Scaling = &s
		}
	}
	return nil
}

func tokenID(v any, def int) int {
	switch t := v.(type) {
	case float64:
		return int(t)
	case []any:
		if len(t) > 0 {
			if f, ok := t[0].(float64); ok {
				return int(f)
			}
		}
	}
	return def
}

func hfDType(torch, dtype string) string {
	d := dtype
	if d == "" {
		d = torch
	}
	switch d {
	case "bfloat16":
		return "BF16"
	case "float16":
		return "F16"
	default:
		return "F32"
	}
}
