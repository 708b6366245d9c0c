package main

import (
	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/model/synth"
)

func synthCmd() *cobra.Command {
	var (
		c        model.Config
		out      string
		seed     uint64
		shardMB  int64
		force    bool
		untied   bool
		withData bool
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
			if withData && c.Vocab < 262 {
				return badFlag("vocab", c.Vocab, "--with-data needs at least 262 (3 control + 256 byte tokens + a few pieces)")
			}
			c.Arch, c.TiedHead, c.BOS, c.EOS = "LlamaForCausalLM", !untied, 1, 2
			if c.KVHeads == 0 {
				c.KVHeads = c.Heads
			}
			if c.Heads > 0 && c.HeadDim == 0 {
				c.HeadDim = c.Dim / c.Heads
			}
			if c.DType != "F32" && c.DType != "BF16" && c.DType != "F16" {
				return badFlag("dtype", c.DType, "want F32, BF16 or F16")
			}
			if err := c.Validate(); err != nil {
				return err
			}
			return model.WriteDirAtomically(out, force, func(tmp string) error {
				if err := model.SaveHF(tmp, &c, synth.Tensors(&c, seed), shardMB<<20); err != nil {
					return err
				}
				if !withData {
					return nil
				}
				return synth.WriteData(tmp, c.Vocab, seed)
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
	fl.StringVar(&out, "out", "", "output directory (must not exist unless --force)")
	fl.BoolVar(&force, "force", false, "replace an existing output directory")
	fl.BoolVar(&withData, "with-data", false, "also write a byte-level llama2.c tokenizer (tokenizer.bin, vocab ≥ 262) and random-word texts calib.txt and eval.txt, so the model runs end to end without any real data")
	markRequired(cmd, "out")
	return cmd
}
