package main

import (
	"fmt"
	"math"

	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/internal/seeded"
	"github.com/unipruning/unipruning/model"
)

func synthCmd() *cobra.Command {
	var (
		c       model.Config
		out     string
		seed    uint64
		shardMB int64
		force   bool
		untied  bool
	)
	cmd := &cobra.Command{
		Use:   "synth",
		Short: "Write a random-weight HF LLaMA model of any size (format, scale and speed tests only)",
		Long: `Writes an HF LlamaForCausalLM directory (config.json + safetensors, sharded with an
index above --shard-mb) whose weights are random: normal with std 1/sqrt(fan_in), norms ≈ 1.
Such a model says nothing about pruning quality; it exists to test formats, memory, scale
and speed. It has no tokenizer: pass one with --tokenizer where a command needs it.`,
		Example: `  unipruning synth --layers 12 --dim 768 --hidden 2048 --heads 12 --vocab 32000 --out /tmp/synth-100m`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("--out is required")
			}
			c.Arch, c.TiedHead, c.BOS, c.EOS = "LlamaForCausalLM", !untied, 1, 2
			if c.KVHeads == 0 {
				c.KVHeads = c.Heads
			}
			if c.Heads > 0 && c.HeadDim == 0 {
				c.HeadDim = c.Dim / c.Heads
			}
			if c.DType != "F32" && c.DType != "BF16" && c.DType != "F16" {
				return fmt.Errorf("--dtype must be F32, BF16 or F16")
			}
			if err := c.Validate(); err != nil {
				return err
			}
			return model.WriteDirAtomically(out, force, func(tmp string) error {
				return model.SaveHF(tmp, &c, synthTensors(&c, seed), shardMB<<20)
			})
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&c.Layers, "layers", 2, "decoder layers")
	fl.IntVar(&c.Dim, "dim", 256, "hidden size")
	fl.IntVar(&c.Hidden, "hidden", 688, "MLP intermediate size")
	fl.IntVar(&c.Heads, "heads", 8, "attention heads")
	fl.IntVar(&c.KVHeads, "kv-heads", 0, "key/value heads (GQA; default = heads)")
	fl.IntVar(&c.HeadDim, "head-dim", 0, "head width (default dim/heads)")
	fl.IntVar(&c.Vocab, "vocab", 512, "vocabulary size")
	fl.IntVar(&c.MaxSeq, "max-seq", 2048, "context length (max_position_embeddings)")
	fl.Float64Var(&c.NormEps, "norm-eps", 1e-5, "RMSNorm epsilon")
	fl.Float64Var(&c.RopeTheta, "rope-theta", 10000, "RoPE base")
	fl.StringVar(&c.DType, "dtype", "F32", "storage dtype: F32, BF16 or F16")
	fl.BoolVar(&untied, "untied", false, "separate LM head (default: tied to the embedding)")
	fl.Uint64Var(&seed, "seed", 0, "random seed")
	fl.Int64Var(&shardMB, "shard-mb", 0, "split into safetensors shards of at most this many MiB (0 = one file)")
	fl.StringVar(&out, "out", "", "output directory (required; must not exist unless --force)")
	fl.BoolVar(&force, "force", false, "replace an existing output directory")
	return cmd
}

// synthTensors lists the tensors of a random model; each is generated from
// its own seeded stream, so the output does not depend on write order.
func synthTensors(c *model.Config, seed uint64) []model.HFTensor {
	var ts []model.HFTensor
	add := func(name string, shape []int, std, mean float64) {
		id := uint64(len(ts))
		ts = append(ts, model.HFTensor{Name: name, Shape: shape, Fill: func(dst []float32) error {
			r := seeded.New(seed, 0x5e17, id)
			for i := range dst {
				dst[i] = float32(mean + std*r.NormFloat64())
			}
			return nil
		}})
	}
	add(model.EmbedName, []int{c.Vocab, c.Dim}, 1, 0)
	for l := 0; l < c.Layers; l++ {
		add(model.AttnNormName(l), []int{c.Dim}, 0.1, 1)
		for m := model.Matrix(0); m < model.NumMatrices; m++ {
			o, i := m.Shape(c)
			add(model.Target{Layer: l, Matrix: m}.TensorName(), []int{o, i}, 1/math.Sqrt(float64(i)), 0)
		}
		add(model.MLPNormName(l), []int{c.Dim}, 0.1, 1)
	}
	add(model.NormName, []int{c.Dim}, 0.1, 1)
	if !c.TiedHead {
		add(model.HeadName, []int{c.Vocab, c.Dim}, 1/math.Sqrt(float64(c.Dim)), 0)
	}
	return ts
}
