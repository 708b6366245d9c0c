package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/eval/tasks"
	"github.com/unipruning/unipruning/internal/datadir"
	"github.com/unipruning/unipruning/model/tokenizer"
	"github.com/unipruning/unipruning/nn"
)

// taskFlags are the zero-shot options shared by eval, prune and run: with
// --tasks, the command also scores the lm-evaluation-harness tasks and
// puts the table in its report.
type taskFlags struct {
	list  string // --tasks: comma-separated names or "all"
	dir   string // --tasks-dir
	batch int    // --tasks-batch
	noBOS bool   // --tasks-no-bos
	skip  bool   // --tasks-skip-too-long
	limit int    // --limit: items per task (eval's own --limit writes here too)
}

// registerTaskFlags adds the zero-shot flags to cmd. A command that
// already has --limit (eval: "first N windows") binds it to t.limit
// itself, so it also limits the items per task; call this after the
// command's own flags.
func registerTaskFlags(cmd *cobra.Command, t *taskFlags) {
	fl := cmd.Flags()
	fl.StringVar(&t.list, "tasks", "", "zero-shot tasks to score as lm-evaluation-harness does: "+
		strings.Join(tasks.Names(), ",")+", or all (the first eight)")
	fl.StringVar(&t.dir, "tasks-dir", "", "directory of the task data (default: shared/data/tasks beside the checkout, or $"+datadir.EnvVar+"/tasks)")
	fl.IntVar(&t.batch, "tasks-batch", 0, "loglikelihood requests per forward pass (default: about 4096 tokens' worth)")
	fl.BoolVar(&t.noBOS, "tasks-no-bos", false, "encode task prompts without BOS (as Wanda's harness fork; the harness adds it for LLaMA)")
	fl.BoolVar(&t.skip, "tasks-skip-too-long", false, "drop (and report) items whose answer alone exceeds the model's context, "+
		"which the harness cannot score; without it they stop the run before scoring starts")
	if f := fl.Lookup("limit"); f != nil {
		f.Usage += "; with --tasks, also the first N items of each task"
		return
	}
	fl.IntVar(&t.limit, "limit", 0, "with --tasks: score only the first N items of each task (0 = all); the report says so")
}

// enabled reports whether --tasks was given.
func (t *taskFlags) enabled() bool { return strings.TrimSpace(t.list) != "" }

// tasksDir resolves --tasks-dir, defaulting to the shared data directory.
func (t *taskFlags) tasksDir() (string, error) {
	if t.dir != "" {
		return t.dir, nil
	}
	d, err := datadir.Dir()
	if err != nil {
		return "", fmt.Errorf("--tasks-dir is required: %v", err)
	}
	return filepath.Join(d, "tasks"), nil
}

// runTasks scores the selected tasks on a whole model; progress gets the
// loglikelihood requests done and their total.
func runTasks(w *nn.Weights[float32], tok tokenizer.Tokenizer, t *taskFlags, progress func(done, total int)) (*tasks.Report, error) {
	ts, err := tasks.Parse(t.list)
	if err != nil {
		return nil, err
	}
	dir, err := t.tasksDir()
	if err != nil {
		return nil, err
	}
	s, err := tasks.NewScorer(w, tok, tasks.Options{Batch: t.batch, NoBOS: t.noBOS})
	if err != nil {
		return nil, err
	}
	return tasks.Evaluate(s, ts, dir, tasks.EvalOptions{Limit: t.limit, SkipTooLong: t.skip}, progress)
}

// printTaskTable prints the zero-shot table on stdout.
func printTaskTable(r *tasks.Report) { fprintTaskTable(os.Stdout, r) }

// fprintTaskTable writes one row per task (acc and acc_norm with the
// harness's standard errors, n), the mean accuracy and every task's
// caveats (which include the HellaSwag subset).
func fprintTaskTable(out io.Writer, r *tasks.Report) {
	bos := "with BOS"
	if !r.BOS {
		bos = "without BOS"
	}
	fmt.Fprintf(out, "zero-shot, lm-evaluation-harness protocol (harness %.7s), max_length %d, %s\n", r.Harness, r.MaxLength, bos)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "task\tn\tacc\t± stderr\tacc_norm\t± stderr\tseconds\t")
	for _, t := range r.Tasks {
		fmt.Fprintf(tw, "%s\t%d\t%.4f\t%s\t%s\t%s\t%.0f\t\n", t.Name, t.N, t.Acc, opt(t.AccStderr),
			opt(t.AccNorm), opt(t.AccNormStderr), t.Seconds)
	}
	tw.Flush()
	fmt.Fprintf(out, "mean acc over %d tasks (%s): %.4f\n", len(r.MeanOver), strings.Join(r.MeanOver, ", "), r.MeanAcc)
	if r.PaperMean != nil {
		fmt.Fprintf(out, "mean acc over the 7 tasks of the pruning papers (%s): %.4f\n", strings.Join(tasks.PaperTasks, ", "), *r.PaperMean)
	}
	for _, t := range r.Tasks {
		if t.Note != "" {
			fmt.Fprintf(out, "note %s: %s\n", t.Name, t.Note)
		}
	}
}

func opt(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.4f", *v)
}
