package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/eval"
	"github.com/unipruning/unipruning/eval/tasks"
	"github.com/unipruning/unipruning/internal/sysmem"
	"github.com/unipruning/unipruning/nn"
)

type evalFlags struct {
	model, tokenizer, dataset, text string
	seqlen, batch, skip             int
	windows                         string
	json                            bool
	tasks                           taskFlags
	mem                             memFlags
}

// evalResult is the JSON result of `unipruning eval`.
type evalResult struct {
	*eval.Manifest
	Model     string        `json:"model"`
	PPL       float64       `json:"ppl,omitempty"`
	NLL       float64       `json:"nll,omitempty"`
	Predicted int           `json:"predicted,omitempty"`
	Seconds   float64       `json:"seconds"`
	Kernel    string        `json:"kernel"`
	ZeroShot  *tasks.Report `json:"zero_shot,omitempty"`
	// PeakRSS is the process's peak resident set size (0 where the OS
	// does not say), for comparing the in-memory and streamed paths.
	PeakRSS uint64 `json:"peak_rss_bytes,omitempty"`
}

func evalCmd() *cobra.Command {
	var f evalFlags
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Perplexity (wikitext2, c4, lines) and zero-shot accuracy (--tasks) of a model",
		Long: `Scores a model's perplexity = exp(mean next-token NLL over all predicted tokens) and/or,
with --tasks, its zero-shot accuracy as lm-evaluation-harness computes it.

Protocols (DESIGN §2.6):
  wikitext2  rows of wiki.test.raw joined with "\n\n", tokenized once with BOS,
             non-overlapping windows of --seqlen (remainder dropped)
  c4         the GPTQ selection: 256 windows from validation documents longer than
             --seqlen, chosen by Python-random-compatible draws with seed 0
  lines      every non-empty (trimmed) line is a document with a BOS in front;
             documents concatenated, then windows as wikitext2

The report states model, protocol, file sha256, seqlen, windows and tokenizer.`,
		Example: `  unipruning eval --model stories260K.bin --tokenizer tok512.bin \
      --dataset lines --text TinyStories-validation-head-794K.txt --seqlen 256`,
		RunE: func(cmd *cobra.Command, args []string) error { return runEval(f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.model, "model", "", "model: HF directory, llama2.c .bin file, or an output directory of prune/extract/run")
	fl.StringVar(&f.tokenizer, "tokenizer", "", "tokenizer file when it is not in the model directory (llama2.c: tok512.bin; default: the model's own)")
	fl.StringVar(&f.dataset, "dataset", "", "perplexity protocol: wikitext2, c4 or lines (with --text; this pair, --tasks, or both)")
	fl.StringVar(&f.text, "text", "", "the text file the protocol reads (wiki.test.raw, a C4 validation .jsonl, or a text file)")
	fl.IntVar(&f.seqlen, "seqlen", 0, "window length in tokens (default: min(2048, the model's context))")
	fl.IntVar(&f.batch, "batch", 0, "windows per forward pass (default: about 4096 tokens' worth)")
	fl.IntVar(&f.tasks.limit, "limit", 0, "score only the first N windows (0 = all); the report says so")
	fl.StringVar(&f.windows, "windows", "", "score only windows A … B−1 (A:B; \":300\" the first 300, \"300:\" the rest), so tuning and tables can use disjoint windows; the report records the range")
	fl.IntVar(&f.skip, "skip", 0, "score all windows but the first N (the same as --windows N:)")
	fl.BoolVar(&f.json, "json", false, "print the result as one JSON object on stdout")
	registerTaskFlags(cmd, &f.tasks)
	f.mem.register(fl, "")
	markRequired(cmd, "model")
	return cmd
}

func runEval(f evalFlags) error {
	if (f.dataset == "" || f.text == "") && !f.tasks.enabled() {
		return missingFlag("dataset", "give --dataset and --text (perplexity), --tasks (zero-shot accuracy), or both")
	}
	if (f.dataset == "") != (f.text == "") {
		return usageError{fmt.Errorf("--dataset and --text go together")}
	}
	limit := f.tasks.limit
	if f.dataset == "" {
		limit = 0 // --limit is then about task items only
	}
	rg, err := windowFlags(f.windows, f.skip, limit)
	if err != nil {
		return err
	}
	if err := f.mem.validate(); err != nil {
		return err
	}
	m, err := openModel(f.model, f.tokenizer, false)
	if err != nil {
		return err
	}
	defer m.ck.Close()
	sc := newScorer(m.ck, nil, &f.mem)
	out := evalResult{Model: f.model, Kernel: nn.ActiveKernel()}
	start := time.Now()
	if f.dataset != "" {
		if err := evalPerplexity(&f, m, sc, rg, &out); err != nil {
			return err
		}
	}
	if f.tasks.enabled() {
		w, err := sc.weights("zero-shot")
		if err != nil {
			return err
		}
		bar := newProgress(1, "zero-shot")
		rep, err := runTasks(w, m.tok, &f.tasks, func(d, t int) { bar.SetTotal(t); bar.Set(d, "") })
		bar.Done()
		if err != nil {
			return err
		}
		out.ZeroShot = rep
	}
	out.Seconds = time.Since(start).Seconds()
	out.PeakRSS, _ = sysmem.PeakRSS()
	logf("peak RSS %s", gib(out.PeakRSS))
	if f.json {
		return printJSON(out)
	}
	if out.Manifest != nil {
		fmt.Printf("model      %s\ndataset    %s  %s\nsha256     %s\ntokenizer  %s\nseqlen     %d  windows %d  predicted %d\nppl        %.4f  (mean NLL %.6f)\n",
			out.Model, out.Dataset, out.Path, out.SHA256, out.Tokenizer, out.Seqlen, out.Windows, out.Predicted, out.PPL, out.NLL)
	}
	if out.ZeroShot != nil {
		printTaskTable(out.ZeroShot)
	}
	return nil
}

// evalPerplexity runs the perplexity protocol into out.
func evalPerplexity(f *evalFlags, m *loaded, sc *scorer, rg windowRange, out *evalResult) error {
	var err error
	if f.seqlen, err = windowLength(f.seqlen, m.ck.Config); err != nil {
		return err
	}
	logf("eval %s: %s, seqlen %d, model %s, kernel %s", f.dataset, f.text, f.seqlen, f.model, nn.ActiveKernel())
	r, err := perplexityLimited("model", sc, m.tok, f.dataset, f.text, f.seqlen, rg, f.batch)
	if err != nil {
		return err
	}
	r.Manifest.Tokenizer = m.ck.TokenizerPath
	out.Manifest, out.PPL, out.NLL, out.Predicted = r.Manifest, r.PPL, r.NLL, r.Predicted
	return nil
}
