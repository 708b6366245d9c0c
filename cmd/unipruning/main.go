// Command unipruning prunes LLaMA-family language models after training:
// UniPruning (a mirror-descent saliency search with one model-wide budget),
// the magnitude / Wanda / RIA / SparseGPT baselines, and the standard
// perplexity protocols — in one process or across a cluster.
//
// This package is the only composition root: subcommands wire the library
// packages together.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/unipruning/unipruning/nn"
)

func main() {
	root := &cobra.Command{
		Use:   "unipruning",
		Short: "Prune LLaMA-family models with UniPruning and the standard baselines",
		Long: `unipruning prunes LLaMA-family checkpoints (HF safetensors directories or llama2.c .bin
files) after training, evaluates them with the standard perplexity protocols, and runs
the UniPruning search in one process or across a cluster.

Every command prints progress on stderr; with --json its result is one JSON object
on stdout.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	kernel := root.PersistentFlags().String("kernel", "auto", "matrix kernel: auto (the best compiled in: "+nn.BestKernel()+"), "+strings.Join(nn.Kernels(), " or "))
	// The kernel is chosen here, once, before any command computes.
	root.PersistentPreRunE = func(*cobra.Command, []string) error { return nn.UseKernel(*kernel) }
	root.AddCommand(evalCmd(), generateCmd(), tokenizeCmd(), pruneCmd(), searchCmd(), extractCmd(), runCmd(), tableCmd(), synthCmd(), convertCmd(), coordinatorCmd(), shardCmd(), natsCmd(), statusCmd(), fetchCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "unipruning:", err)
		os.Exit(1)
	}
}
