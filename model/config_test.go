package model

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

const llamaCfg = `{"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":172,
"num_hidden_layers":2,"num_attention_heads":8,"num_key_value_heads":4,"vocab_size":512,
"max_position_embeddings":512,"rms_norm_eps":1e-5,%s"tie_word_embeddings":true,"torch_dtype":"bfloat16"}`

func parse(t *testing.T, rope string) *Config {
	t.Helper()
	c, err := ParseHFConfig([]byte(strings.Replace(llamaCfg, "%s", rope, 1)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHFConfigRopeStyles(t *testing.T) {
	old := parse(t, `"rope_theta":500000.0,`)
	v5 := parse(t, `"rope_parameters":{"rope_theta":500000.0,"rope_type":"default"},`)
	if old.RopeTheta != 500000 || v5.RopeTheta != 500000 || old.Scaling != nil || v5.Scaling != nil {
		t.Fatalf("rope theta: old %v, v5 %v", old.RopeTheta, v5.RopeTheta)
	}
	if old.HeadDim != 8 || old.KVHeads != 4 || !old.TiedHead || old.DType != "BF16" || old.RopeInterleaved {
		t.Fatalf("fields: %+v", old)
	}
	def := parse(t, "")
	if def.RopeTheta != 10000 {
		t.Fatalf("default theta %v", def.RopeTheta)
	}
}

func TestHFConfigLlama3Scaling(t *testing.T) {
	for _, rope := range []string{
		`"rope_theta":500000.0,"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192},`,
		`"rope_parameters":{"rope_theta":500000.0,"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192},`,
	} {
		c := parse(t, rope)
		if c.Scaling == nil || c.Scaling.Type != "llama3" || c.Scaling.Factor != 8 {
			t.Fatalf("scaling not read: %+v", c.Scaling)
		}
		inv := c.InvFreq()
		base := (&Config{HeadDim: c.HeadDim, RopeTheta: c.RopeTheta}).InvFreq()
		// High frequencies unchanged, the lowest divided by the factor.
		if inv[0] != base[0] {
			t.Fatalf("highest frequency changed: %v vs %v", inv[0], base[0])
		}
		last := len(inv) - 1
		wave := 2 * math.Pi / base[last]
		if wave > 8192 && math.Abs(inv[last]-base[last]/8) > 1e-18 {
			t.Fatalf("lowest frequency %v, want %v", inv[last], base[last]/8)
		}
	}
}

func TestHFConfigArchitectures(t *testing.T) {
	q, err := ParseHFConfig([]byte(`{"architectures":["Qwen2ForCausalLM"],"hidden_size":64,"intermediate_size":128,"num_hidden_layers":1,
		"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,"max_position_embeddings":64,"rms_norm_eps":1e-6,"rope_theta":1000000.0,
		"sliding_window":32,"use_sliding_window":false,"tie_word_embeddings":false}`))
	if err != nil {
		t.Fatal(err)
	}
	if !q.QKVBias || q.OBias || q.SlidingWindow != 0 || q.TiedHead {
		t.Fatalf("qwen2: %+v", q)
	}
	m, err := ParseHFConfig([]byte(`{"architectures":["MistralForCausalLM"],"hidden_size":64,"intermediate_size":128,"num_hidden_layers":1,
		"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,"max_position_embeddings":64,"rms_norm_eps":1e-5,"sliding_window":16,"head_dim":32}`))
	if err != nil {
		t.Fatal(err)
	}
	if m.SlidingWindow != 16 || m.HeadDim != 32 || m.QKVBias {
		t.Fatalf("mistral: %+v", m)
	}
}

func TestHFConfigErrors(t *testing.T) {
	cases := map[string]string{
		`not json`:                              "not valid JSON",
		`{"architectures":["GPT2LMHeadModel"]}`: "not supported",
		`{"model_type":"llama"}`:                "no \"architectures\"",
		strings.Replace(llamaCfg, "%s", `"hidden_act":"gelu",`, 1):                              "hidden_act",
		strings.Replace(llamaCfg, "%s", `"mlp_bias":true,`, 1):                                  "mlp_bias",
		strings.Replace(llamaCfg, "%s", `"rope_scaling":{"rope_type":"yarn","factor":4.0},`, 1): "not supported",
		`{"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":172,"num_hidden_layers":2,"num_attention_heads":8,"num_key_value_heads":3,"vocab_size":10,"max_position_embeddings":8,"rms_norm_eps":1e-5}`: "not a multiple",
		`{"architectures":["LlamaForCausalLM"],"hidden_size":0,"intermediate_size":172,"num_hidden_layers":2,"num_attention_heads":8,"vocab_size":10,"max_position_embeddings":8}`:                                              "must be positive",
	}
	for in, want := range cases {
		_, err := ParseHFConfig([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.60s…: got %v, want an error containing %q", in, err, want)
		}
	}
}

func TestHFConfigQwen3(t *testing.T) {
	base := `{"architectures":["Qwen3ForCausalLM"],"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
		"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,"max_position_embeddings":64,"rms_norm_eps":1e-6,
		"rope_theta":1000000.0,"sliding_window":null,"use_sliding_window":false,"max_window_layers":2,%s"tie_word_embeddings":true}`
	q, err := ParseHFConfig([]byte(strings.Replace(base, "%s", `"head_dim":32,"attention_bias":false,`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	// head_dim 32 with hidden 64 and 4 heads: q is 128 wide, wider than the model.
	if !q.QKNorm || q.QKVBias || q.OBias || q.HeadDim != 32 || q.QDim() != 128 || q.KVDim() != 64 || !q.TiedHead || q.SlidingWindow != 0 {
		t.Fatalf("qwen3: %+v", q)
	}
	if o, i := O.Shape(q); o != 64 || i != 128 {
		t.Fatalf("o_proj shape %dx%d", o, i)
	}
	def, err := ParseHFConfig([]byte(strings.Replace(base, "%s", `"attention_bias":true,`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if def.HeadDim != 128 || !def.QKVBias || !def.OBias {
		t.Fatalf("qwen3 defaults: head_dim %d (want Qwen3Config's 128), biases %v %v", def.HeadDim, def.QKVBias, def.OBias)
	}
	// A window on layers ≥ max_window_layers is refused, not run as full attention.
	_, err = ParseHFConfig([]byte(strings.Replace(strings.Replace(strings.Replace(base, `"use_sliding_window":false,"max_window_layers":2`, `"use_sliding_window":true,"max_window_layers":1`, 1),
		`"sliding_window":null`, `"sliding_window":16`, 1), "%s", "", 1)))
	if err == nil || !strings.Contains(err.Error(), "use_sliding_window") {
		t.Fatalf("qwen3 sliding window: %v", err)
	}
	_, err = ParseHFConfig([]byte(strings.Replace(base, "%s", `"layer_types":["full_attention","sliding_attention"],`, 1)))
	if err == nil || !strings.Contains(err.Error(), "sliding_attention") {
		t.Fatalf("layer_types: %v", err)
	}
}

func TestHFConfigMistralWindow(t *testing.T) {
	base := `{"architectures":["MistralForCausalLM"],"hidden_size":64,"intermediate_size":128,"num_hidden_layers":1,
		"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,"max_position_embeddings":8192,"rms_norm_eps":1e-5%s}`
	for in, want := range map[string]int{"": 4096, `,"sliding_window":null`: 0, `,"sliding_window":512`: 512} {
		c, err := ParseHFConfig([]byte(strings.Replace(base, "%s", in, 1)))
		if err != nil {
			t.Fatal(err)
		}
		if c.SlidingWindow != want {
			t.Errorf("%q: window %d, want %d (transformers' MistralConfig)", in, c.SlidingWindow, want)
		}
	}
}

// TestHFConfigJSONRoundTrip: the config.json written for each architecture
// parses back to the same Config.
func TestHFConfigJSONRoundTrip(t *testing.T) {
	cases := []Config{
		{Arch: "LlamaForCausalLM", HeadDim: 24, Scaling: &RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 64}},
		{Arch: "MistralForCausalLM", HeadDim: 16, SlidingWindow: 32},
		{Arch: "MistralForCausalLM", HeadDim: 16},
		{Arch: "Qwen2ForCausalLM", HeadDim: 16, QKVBias: true, TiedHead: true},
		{Arch: "Qwen3ForCausalLM", HeadDim: 32, QKNorm: true, TiedHead: true},
		{Arch: "Qwen3ForCausalLM", HeadDim: 8, QKNorm: true, QKVBias: true, OBias: true},
	}
	for _, c := range cases {
		c.Dim, c.Hidden, c.Layers, c.Heads, c.KVHeads, c.Vocab, c.MaxSeq = 64, 96, 2, 4, 2, 300, 128
		c.NormEps, c.RopeTheta, c.BOS, c.EOS, c.DType = 1e-6, 1e6, 5, 7, "BF16"
		b, err := HFConfigJSON(&c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseHFConfig(b)
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.Arch, err, b)
		}
		gs, ws := got.Scaling, c.Scaling
		got.Scaling, c.Scaling = nil, nil
		if g, w := fmt.Sprintf("%+v %+v", *got, gs), fmt.Sprintf("%+v %+v", c, ws); g != w {
			t.Errorf("%s round trip:\n got %s\nwant %s", c.Arch, g, w)
		}
	}
	bad := Config{Arch: "LlamaForCausalLM", QKNorm: true}
	if _, err := HFConfigJSON(&bad); err == nil {
		t.Error("a Llama config with q/k norms was written")
	}
}
