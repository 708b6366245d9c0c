package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/internal/seeded"
	"github.com/unipruning/unipruning/nn"
)

func generateCmd() *cobra.Command {
	var (
		modelPath, tokPath, prompt string
		steps                      int
		temperature                float64
		seed                       uint64
		asJSON                     bool
	)
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Continue a prompt (greedy at --temperature 0): a cheap end-to-end check of a model",
		Example: `  unipruning generate --model stories260K.bin --tokenizer tok512.bin \
      --prompt "Once upon a time" --steps 64 --temperature 0`,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := openModel(modelPath, tokPath, true)
			if err != nil {
				return err
			}
			defer m.ck.Close()
			var ids []int32
			for _, id := range m.tok.Encode(prompt, true, false) {
				ids = append(ids, int32(id))
			}
			if len(ids) == 0 {
				return fmt.Errorf("the tokenizer adds no BOS, so an empty --prompt gives the model nothing to continue")
			}
			emit := func(prev, id int32) {}
			if !asJSON {
				fmt.Print(prompt)
				emit = func(prev, id int32) { fmt.Print(m.tok.Piece(int(prev), int(id))) }
			}
			out, err := nn.Generate(nn.NewStage(m.w), ids, steps, temperature, seeded.New(seed, seeded.Eval), int32(m.tok.EOS()), emit)
			if err != nil {
				return err
			}
			gen := out[len(ids):]
			if asJSON {
				var gi []int
				for _, v := range gen {
					gi = append(gi, int(v))
				}
				return printJSON(map[string]any{"prompt": prompt, "ids": gi, "text": prompt + m.tok.Decode(gi), "temperature": temperature, "seed": seed})
			}
			fmt.Println()
			fmt.Fprintf(os.Stderr, "(%d tokens)\n", len(gen))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&modelPath, "model", "", "model: HF directory, llama2.c .bin file, or an output directory of prune/extract/run")
	fl.StringVar(&tokPath, "tokenizer", "", "tokenizer file when it is not in the model directory (default: the model's own)")
	fl.StringVar(&prompt, "prompt", "", "text to continue (default: none, i.e. start from BOS)")
	fl.IntVar(&steps, "steps", 128, "number of tokens to generate")
	fl.Float64Var(&temperature, "temperature", 0, "sampling temperature; 0 = greedy (argmax)")
	fl.Uint64Var(&seed, "seed", 0, "seed of the sampler (temperature > 0)")
	fl.BoolVar(&asJSON, "json", false, "print {prompt, ids, text} as JSON on stdout")
	markRequired(cmd, "model")
	return cmd
}
