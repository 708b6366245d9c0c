package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/model/synth"
)

func synthCmd() *cobra.Command {
	var (
		c                   model.Config
		arch, dtype, tokDir string
		ropeScaling         string
		out                 string
		seed                uint64
		shardMB             int64
		force, untied       bool
		withData, attnBias  bool
	)
	cmd := &cobra.Command{
		Use:   "synth",
		Short: "Write a random-weight HF model (Llama, Mistral, Qwen2, Qwen3) of any size (format, scale and speed tests only)",
		Long: `Writes an HF model directory (config.json, generation_config.json and safetensors,
sharded with an index above --shard-mb) of the chosen architecture whose weights are random:
normal with std 1/sqrt(fan_in), embedding std 0.02, norms ≈ 1. Such a model says nothing
about pruning quality; it exists to test formats, memory, scale and speed.

--tokenizer-from DIR copies a real tokenizer's files (tokenizer.json, vocab.json + merges.txt,
tokenizer.model, tokenizer_config.json, … as present) into the model, takes the vocabulary
size from it unless --vocab is given, and BOS/EOS from it; so a Llama-3- or Qwen3-shaped
model runs end to end with its family's real tokenizer. Without it the model has no
tokenizer (pass one with --tokenizer where a command needs it, or use --with-data).`,
		Example: `  unipruning synth --layers 12 --dim 768 --hidden 2048 --heads 12 --vocab 32000 --out /tmp/synth-100m
  unipruning synth --arch qwen3 --layers 2 --dim 64 --hidden 128 --heads 4 --kv-heads 2 --head-dim 32 \
      --dtype bf16 --tokenizer-from ../shared/data/tokenizers/qwen2 --out /tmp/qwen3-tiny`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c.TiedHead, c.BOS, c.EOS = !untied, 1, 2
			if err := synth.Configure(&c, arch); err != nil {
				return err
			}
			if attnBias {
				if c.Arch == "Qwen2ForCausalLM" {
					return badFlag("attention-bias", true, "Qwen2 always has q/k/v biases")
				}
				c.QKVBias, c.OBias = true, true
			}
			switch ropeScaling {
			case "":
			case "llama3": // Llama-3.1's published rope_scaling
				c.Scaling = &model.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}
			default:
				return badFlag("rope-scaling", ropeScaling, "only llama3 is supported")
			}
			if c.KVHeads == 0 {
				c.KVHeads = c.Heads
			}
			if c.Heads > 0 && c.HeadDim == 0 {
				c.HeadDim = c.Dim / c.Heads
			}
			switch c.DType = strings.ToUpper(dtype); c.DType {
			case "F32", "BF16", "F16":
			default:
				return badFlag("dtype", dtype, "want f32, bf16 or f16")
			}
			var tok *synth.TokenizerInfo
			if tokDir != "" {
				if withData {
					return conflictingFlags("with-data", "tokenizer-from")
				}
				var err error
				if tok, err = synth.ReadTokenizerInfo(tokDir); err != nil {
					return err
				}
				if c.Vocab == 0 {
					c.Vocab = tok.Vocab
				}
				if c.Vocab < tok.Vocab {
					return badFlag("vocab", c.Vocab, "smaller than the tokenizer's %d tokens", tok.Vocab)
				}
				if tok.BOS >= 0 {
					c.BOS = tok.BOS
				}
				if tok.EOS >= 0 {
					c.EOS = tok.EOS
				}
			}
			if c.Vocab == 0 {
				c.Vocab = 512
			}
			if withData && c.Vocab < 262 {
				return badFlag("vocab", c.Vocab, "--with-data needs at least 262 (3 control + 256 byte tokens + a few pieces)")
			}
			if err := c.Validate(); err != nil {
				return err
			}
			return model.WriteDirAtomically(out, force, func(tmp string) error {
				if err := model.SaveHF(tmp, &c, synth.Tensors(&c, seed), shardMB<<20); err != nil {
					return err
				}
				if err := synth.WriteGenerationConfig(tmp, &c); err != nil {
					return err
				}
				if tok != nil {
					_, err := synth.CopyTokenizer(tokDir, tmp)
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
	fl.StringVar(&arch, "arch", "llama", "architecture: "+strings.Join(synth.ArchNames(), ", "))
	fl.StringVar(&tokDir, "tokenizer-from", "", "copy this directory's tokenizer files into the model; vocabulary size and BOS/EOS come from it")
	fl.IntVar(&c.Layers, "layers", 2, "decoder layers")
	fl.IntVar(&c.Dim, "dim", 256, "hidden size")
	fl.IntVar(&c.Hidden, "hidden", 688, "MLP intermediate size")
	fl.IntVar(&c.Heads, "heads", 8, "attention heads")
	fl.IntVar(&c.KVHeads, "kv-heads", 0, "key/value heads (GQA; default = heads)")
	fl.IntVar(&c.HeadDim, "head-dim", 0, "head width, independent of --dim (default dim/heads)")
	fl.IntVar(&c.Vocab, "vocab", 0, "vocabulary size (default: the tokenizer's with --tokenizer-from, else 512)")
	fl.IntVar(&c.MaxSeq, "max-seq", 2048, "context length (max_position_embeddings)")
	fl.IntVar(&c.SlidingWindow, "sliding-window", 0, "mistral: attention window in tokens (0 = full attention, written as null)")
	fl.BoolVar(&attnBias, "attention-bias", false, "llama, mistral, qwen3: biases on q, k, v and o (attention_bias)")
	fl.StringVar(&ropeScaling, "rope-scaling", "", "llama3: Llama-3.1's rope_scaling (factor 8, low 1, high 4, original context 8192)")
	fl.Float64Var(&c.NormEps, "norm-eps", 1e-5, "RMSNorm epsilon")
	fl.Float64Var(&c.RopeTheta, "rope-theta", 10000, "RoPE base")
	fl.StringVar(&dtype, "dtype", "f32", "storage dtype: f32, bf16 or f16")
	fl.BoolVar(&untied, "untied", false, "separate LM head (default: tied to the embedding)")
	fl.Uint64Var(&seed, "seed", 0, "random seed")
	fl.Int64Var(&shardMB, "shard-mb", 0, "split into safetensors shards of at most this many MiB (0 = one file)")
	fl.StringVar(&out, "out", "", "output directory (must not exist unless --force)")
	fl.BoolVar(&force, "force", false, "replace an existing output directory")
	fl.BoolVar(&withData, "with-data", false, "also write a byte-level llama2.c tokenizer (tokenizer.bin, vocab ≥ 262) and random-word texts calib.txt and eval.txt, so the model runs end to end without any real data")
	markRequired(cmd, "out")
	return cmd
}
