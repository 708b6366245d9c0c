// Command unipruning prunes LLaMA-family language models after training:
// UniPruning (a mirror-descent saliency search with one model-wide budget),
// the magnitude / Wanda / RIA / SparseGPT baselines, and the standard
// perplexity protocols — in one process or across a cluster.
//
// This package is the only composition root: subcommands wire the library
// packages together.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/coordinator"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/nn"
)

// Exit statuses.
const (
	exitFailed = 1 // the work failed (bad data, I/O, a cluster that gave up)
	exitUsage  = 2 // an invalid command line: unknown command or flag, a bad or missing flag value
)

const exitStatusHelp = `
Exit status: 0 on success, 1 when the work failed, 2 on an invalid command line
(unknown command or flag, a bad or missing flag value) or invalid input (a model,
calibration file or job that is missing, does not parse, or does not fit, e.g.
seqlen over the model's context; a cluster job that failed for such a reason).
The reason is on stderr.
`

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "unipruning:", err)
		os.Exit(exitCode(err))
	}
}

// exitCode is the process status for an error returned by a command.
func exitCode(err error) int {
	var jf *coordinator.JobFailedError
	switch {
	case isUsage(err), job.ClassOf(err) == job.InvalidInput:
		return exitUsage
	case errors.As(err, &jf) && jf.Class == job.InvalidInput.String():
		return exitUsage
	}
	return exitFailed
}

// newRoot builds the command tree.
func newRoot() *cobra.Command {
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
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkFlags(cmd); err != nil {
			return err
		}
		// The kernel is chosen here, once, before any command computes.
		if err := nn.UseKernel(*kernel); err != nil {
			return badFlag("kernel", *kernel, "%v", err)
		}
		return nil
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(evalCmd(), generateCmd(), tokenizeCmd(), pruneCmd(), searchCmd(), extractCmd(), runCmd(), tableCmd(), synthCmd(), convertCmd(), coordinatorCmd(), shardCmd(), natsCmd(), statusCmd(), fetchCmd(), credsCmd(), retryCmd())
	documentDefaults(root)
	root.SetUsageTemplate(root.UsageTemplate() + exitStatusHelp)
	return root
}
