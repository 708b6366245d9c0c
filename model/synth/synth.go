// Package synth writes random-weight models and random data in the real
// formats — Hugging Face checkpoints of the supported architectures (Llama,
// Mistral, Qwen2, Qwen3) in any shape, with a real tokenizer's files copied
// in, so Llama-3- or Qwen3-shaped models can be run here without their
// weights. For format, scale and speed tests only: such a model says nothing
// about pruning quality.
package synth

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/unipruning/unipruning/internal/seeded"
	"github.com/unipruning/unipruning/model"
)

// Archs maps the --arch names to the architectures they write.
var Archs = map[string]string{
	"llama":   "LlamaForCausalLM",
	"mistral": "MistralForCausalLM",
	"qwen2":   "Qwen2ForCausalLM",
	"qwen3":   "Qwen3ForCausalLM",
}

// ArchNames lists the --arch values in a stable order (for help and errors).
func ArchNames() []string {
	var ns []string
	for n := range Archs {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// Configure sets the architecture-specific fields of c for arch (one of
// Archs' keys): Qwen2 has q/k/v biases, Qwen3 per-head q/k norms; a sliding
// window is only meaningful for Mistral. Shapes stay as the caller set them.
func Configure(c *model.Config, arch string) error {
	name, ok := Archs[strings.ToLower(arch)]
	if !ok {
		return fmt.Errorf("--arch %q is not supported (want %s)", arch, strings.Join(ArchNames(), ", "))
	}
	c.Arch = name
	switch name {
	case "Qwen2ForCausalLM":
		c.QKVBias, c.OBias = true, false
	case "Qwen3ForCausalLM":
		c.QKNorm = true
	}
	if c.SlidingWindow > 0 && name != "MistralForCausalLM" {
		return fmt.Errorf("--sliding-window is only supported for --arch mistral")
	}
	return nil
}

// Tensors lists the tensors of a random model of c. Each tensor comes from
// its own seeded stream, so the output does not depend on write order:
// matrices are normal with std 1/√fan_in, the embedding has std 0.02 (as HF
// initialises it, keeping logits O(1)), norms are ≈ 1, biases small.
func Tensors(c *model.Config, seed uint64) []model.HFTensor {
	var ts []model.HFTensor
	// Llama's tensors are numbered in order; tensors Llama does not have
	// (biases, q/k norms) get ids of their own, so a Llama model's values do
	// not change when other architectures gain tensors.
	var base, extra uint64
	add := func(id uint64, name string, shape []int, std, mean float64) {
		ts = append(ts, model.HFTensor{Name: name, Shape: shape, Fill: func(dst []float32) error {
			r := seeded.New(seed, 0x5e17, id)
			for i := range dst {
				dst[i] = float32(mean + std*r.NormFloat64())
			}
			return nil
		}})
	}
	next := func() uint64 { base++; return base - 1 }
	more := func() uint64 { extra++; return 1<<32 | extra }
	add(next(), model.EmbedName, []int{c.Vocab, c.Dim}, 0.02, 0)
	for l := 0; l < c.Layers; l++ {
		add(next(), model.AttnNormName(l), []int{c.Dim}, 0.1, 1)
		for m := model.Matrix(0); m < model.NumMatrices; m++ {
			tg := model.Target{Layer: l, Matrix: m}
			o, i := m.Shape(c)
			add(next(), tg.TensorName(), []int{o, i}, 1/math.Sqrt(float64(i)), 0)
			if c.HasBias(m) {
				add(more(), tg.BiasName(), []int{o}, 0.02, 0)
			}
		}
		add(next(), model.MLPNormName(l), []int{c.Dim}, 0.1, 1)
		if c.QKNorm {
			add(more(), model.QNormName(l), []int{c.HeadDim}, 0.1, 1)
			add(more(), model.KNormName(l), []int{c.HeadDim}, 0.1, 1)
		}
	}
	add(next(), model.NormName, []int{c.Dim}, 0.1, 1)
	if !c.TiedHead {
		add(next(), model.HeadName, []int{c.Vocab, c.Dim}, 1/math.Sqrt(float64(c.Dim)), 0)
	}
	return ts
}

// WriteGenerationConfig writes the generation_config.json transformers
// derives from a model config (BOS/EOS), as a real checkpoint carries one.
func WriteGenerationConfig(dir string, c *model.Config) error {
	b, err := json.MarshalIndent(map[string]any{"_from_model_config": true, "bos_token_id": c.BOS, "eos_token_id": c.EOS}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "generation_config.json"), append(b, '\n'), 0o644)
}
