package main

import (
	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/model"
)

func convertCmd() *cobra.Command {
	var modelPath, tokPath, out string
	var force bool
	cmd := &cobra.Command{
		Use:   "convert",
		Short: "Convert a llama2.c .bin model to a Hugging Face directory",
		Long: `Writes a LlamaForCausalLM directory (config.json, model.safetensors, the tokenizer
copied beside it) from a llama2.c checkpoint. The q and k projections are permuted from
llama2.c's interleaved RoPE pairs to the half-rotation layout Hugging Face expects, so the
result computes the same logits under transformers and under this tool.`,
		Example: `  unipruning convert --model stories260K.bin --tokenizer tok512.bin --out stories260K-hf`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ck, err := model.Open(modelPath, tokPath)
			if err != nil {
				return err
			}
			defer ck.Close()
			if err := model.WriteDirAtomically(out, force, func(tmp string) error { return model.ConvertToHF(ck, tmp) }); err != nil {
				return err
			}
			logf("wrote %s", out)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&modelPath, "model", "", "llama2.c .bin model")
	fl.StringVar(&tokPath, "tokenizer", "", "tokenizer to copy beside the output (default: found beside the model)")
	fl.StringVar(&out, "out", "", "output directory (must not exist unless --force)")
	fl.BoolVar(&force, "force", false, "replace an existing output directory")
	markRequired(cmd, "model", "out")
	return cmd
}
