package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/eval"
	"github.com/unipruning/unipruning/eval/tasks"
	"github.com/unipruning/unipruning/model/tokenizer"
	"github.com/unipruning/unipruning/report"
)

// evalSpec is the --eval-* flags shared by prune, extract and run.
type evalSpec struct {
	datasets, texts []string
	seqlen          int
	skipDense       bool
	windows         string // --eval-windows A:B
	tasks           taskFlags
	mem             memFlags
}

// any reports whether any evaluation was asked for.
func (e *evalSpec) any() bool { return len(e.texts) > 0 || e.tasks.enabled() }

func (e *evalSpec) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&e.datasets, "eval-dataset", nil, "perplexity protocol of each --eval-text: wikitext2, c4 or lines (one value applies to all)")
	fl.StringArrayVar(&e.texts, "eval-text", nil, "evaluate the dense and pruned model on this text (repeatable)")
	fl.IntVar(&e.seqlen, "eval-seqlen", 0, "evaluation window length (default: the calibration --seqlen)")
	fl.BoolVar(&e.skipDense, "eval-skip-dense", false, "evaluate only the pruned model (the dense figure is known)")
	fl.StringVar(&e.windows, "eval-windows", "", "score only windows A … B−1 of each text (A:B, either side may be empty), e.g. windows no tuning saw")
	registerTaskFlags(cmd, &e.tasks)
	e.mem.register(fl, "eval-")
}

func (e *evalSpec) validate() error {
	if err := e.mem.validate(); err != nil {
		return err
	}
	if e.windows != "" {
		if _, err := parseWindows("eval-windows", e.windows); err != nil {
			return err
		}
	}
	if len(e.texts) == 0 {
		if len(e.datasets) > 0 {
			return missingFlag("eval-text", "--eval-dataset names the protocol of an --eval-text")
		}
		return nil
	}
	if len(e.datasets) != 1 && len(e.datasets) != len(e.texts) {
		return usageError{fmt.Errorf("give one --eval-dataset, or one per --eval-text (%d texts, %d datasets)", len(e.texts), len(e.datasets))}
	}
	for _, t := range e.texts {
		if _, err := os.Stat(t); err != nil {
			return badFlag("eval-text", t, "%v", err)
		}
	}
	for _, d := range e.datasets {
		if d != eval.WikiText2 && d != eval.C4 && d != eval.Lines {
			return badFlag("eval-dataset", d, "unknown protocol (want wikitext2, c4 or lines)")
		}
	}
	return nil
}

func (e *evalSpec) dataset(i int) string {
	if len(e.datasets) == 1 {
		return e.datasets[0]
	}
	return e.datasets[i]
}

// zeroShot scores the --tasks on a model into rep (label: dense, pruned).
func (e *evalSpec) zeroShot(label string, sc *scorer, tok tokenizer.Tokenizer, rep *report.Report) error {
	if !e.tasks.enabled() {
		return nil
	}
	w, err := sc.weights("zero-shot " + label)
	if err != nil {
		return err
	}
	bar := newProgress(1, "zero-shot "+label)
	zs, err := runTasks(w, tok, &e.tasks, func(d, t int) { bar.SetTotal(t); bar.Set(d, "") })
	bar.Done()
	if err != nil {
		return err
	}
	if rep.ZeroShot == nil {
		rep.ZeroShot = map[string]*tasks.Report{}
	}
	rep.ZeroShot[label] = zs
	logf("zero-shot %s: mean acc %.4f over %d tasks", label, zs.MeanAcc, len(zs.Tasks))
	return nil
}

// score evaluates a model on every requested text and task into rep
// (label: dense, pruned), in memory or streamed as --eval-memory and
// --eval-stream allow.
func (e *evalSpec) score(label string, m *loaded, tokName string, seqlen int, rep *report.Report) error {
	sc := newScorer(m.ck, nil, &e.mem)
	evs, err := e.run(label, sc, m.tok, tokName, seqlen)
	rep.Evals = append(rep.Evals, evs...)
	if err != nil {
		return err
	}
	return e.zeroShot(label, sc, m.tok, rep)
}

// run scores a model on every requested text.
func (e *evalSpec) run(label string, sc *scorer, tok eval.Tokenizer, tokName string, seqlen int) ([]report.Eval, error) {
	var out []report.Eval
	if e.seqlen > 0 {
		seqlen = e.seqlen
	}
	var rg windowRange
	if e.windows != "" {
		rg, _ = parseWindows("eval-windows", e.windows) // validated
	}
	for i, text := range e.texts {
		r, err := perplexityLimited(label, sc, tok, e.dataset(i), text, seqlen, rg, 0)
		if err != nil {
			return nil, err
		}
		r.Manifest.Tokenizer = tokName
		out = append(out, r)
	}
	return out, nil
}

func perplexityOf(label string, sc *scorer, tok eval.Tokenizer, dataset, text string, seqlen int) (report.Eval, error) {
	return perplexityLimited(label, sc, tok, dataset, text, seqlen, windowRange{}, 0)
}

// perplexityLimited scores a model on the windows rg selects (all when
// unset), batch windows per forward pass (0: about 4096 tokens' worth).
func perplexityLimited(label string, sc *scorer, tok eval.Tokenizer, dataset, text string, seqlen int, rg windowRange, batch int) (report.Eval, error) {
	ws, man, err := eval.EvalWindows(dataset, text, tok, seqlen)
	if err != nil {
		return report.Eval{}, err
	}
	if ws, err = rg.apply(ws, man); err != nil {
		return report.Eval{}, err
	}
	if batch == 0 {
		batch = eval.BatchFor(seqlen)
	}
	start := time.Now()
	bar := newProgress(len(ws), fmt.Sprintf("ppl %s %s", label, filepath.Base(text)))
	res, err := sc.perplexity(ws, batch, func(d, t int) { bar.Set(d, "") })
	bar.Done()
	if err != nil {
		return report.Eval{}, err
	}
	logf("ppl %-6s %s (%s, seqlen %d, %d windows): %.4f", label, text, dataset, seqlen, len(ws), res.PPL())
	return report.Eval{Model: label, Manifest: man, PPL: res.PPL(), NLL: res.Sum / float64(res.Count),
		Predicted: res.Count, Seconds: time.Since(start).Seconds()}, nil
}
