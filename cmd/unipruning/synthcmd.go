package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/internal/seeded"
	"github.com/unipruning/unipruning/model"
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
				if err := model.SaveHF(tmp, &c, synthTensors(&c, seed), shardMB<<20); err != nil {
					return err
				}
				if !withData {
					return nil
				}
				return writeSynthData(tmp, c.Vocab, seed)
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
	fl.BoolVar(&withData, "with-data", false, "also write a byte-level llama2.c tokenizer (tokenizer.bin, vocab ≥ 262) and random-word texts calib.txt and eval.txt, so the model runs end to end without any real data")
	return cmd
}

// writeSynthData writes a byte-fallback llama2.c tokenizer and two texts of
// random words (format tests only).
func writeSynthData(dir string, vocab int, seed uint64) error {
	if vocab < 262 {
		return fmt.Errorf("--with-data needs --vocab ≥ 262 (3 control + 256 byte tokens + a few pieces)")
	}
	var b bytes.Buffer
	put := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	put(int32(16))
	piece := func(s string, score float32) {
		put(score)
		put(int32(len(s)))
		b.WriteString(s)
	}
	piece("<unk>", 0)
	piece("\n<s>\n", 0)
	piece("\n</s>\n", 0)
	for i := 0; i < 256; i++ {
		piece(fmt.Sprintf("<0x%02X>", i), 0)
	}
	piece(" ", -1)
	letters := "etaoinshrdlucmfwypvbgkjqxz"
	for i := 259 + 1; i < vocab; i++ {
		k := i - 260
		switch {
		case k < len(letters):
			piece(letters[k:k+1], -2)
		case k < 2*len(letters):
			piece(" "+letters[k-len(letters):k-len(letters)+1], -3)
		default: // unique unreachable pieces pad the vocabulary
			piece(fmt.Sprintf("\xff%04x", k), -100)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.bin"), b.Bytes(), 0o644); err != nil {
		return err
	}
	for i, name := range []string{"calib.txt", "eval.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), randomWords(seed+uint64(i), 2000), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func randomWords(seed uint64, lines int) []byte {
	r := seeded.New(seed, 0x7e47)
	var b bytes.Buffer
	for l := 0; l < lines; l++ {
		for w := 0; w < 12; w++ {
			for c := 0; c < 2+r.IntN(6); c++ {
				b.WriteByte(byte('a' + r.IntN(26)))
			}
			b.WriteByte(' ')
		}
		b.WriteString("end.\n")
	}
	return b.Bytes()
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
	add(model.EmbedName, []int{c.Vocab, c.Dim}, 0.02, 0) // HF-style init: logits stay O(1)
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
