package model

import (
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
