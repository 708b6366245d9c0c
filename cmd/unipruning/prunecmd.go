package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/eval"
	"github.com/unipruning/unipruning/eval/tasks"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/model/tokenizer"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/provenance"
	"github.com/unipruning/unipruning/prune"
	"github.com/unipruning/unipruning/prune/layerwise"
	"github.com/unipruning/unipruning/prune/maskfile"
	"github.com/unipruning/unipruning/report"
)

type pruneFlags struct {
	model, tokenizer, method, pattern, out string
	calib, calibFormat                     string
	sparsity                               float64
	nsamples, seqlen, batch                int
	seed                                   uint64
	byRow, byMatrix, force, json           bool
	evals                                  evalSpec
	dumpCalib                              string
}

// evalSpec is the --eval-* flags shared by prune, extract and run.
type evalSpec struct {
	datasets, texts []string
	seqlen          int
	skipDense       bool
	tasks           taskFlags
}

// any reports whether any evaluation was asked for.
func (e *evalSpec) any() bool { return len(e.texts) > 0 || e.tasks.enabled() }

func (e *evalSpec) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&e.datasets, "eval-dataset", nil, "perplexity protocol of each --eval-text: wikitext2, c4 or lines (one value applies to all)")
	fl.StringArrayVar(&e.texts, "eval-text", nil, "evaluate the dense and pruned model on this text (repeatable)")
	fl.IntVar(&e.seqlen, "eval-seqlen", 0, "evaluation window length (default: the calibration --seqlen)")
	fl.BoolVar(&e.skipDense, "eval-skip-dense", false, "evaluate only the pruned model (the dense figure is known)")
	registerTaskFlags(cmd, &e.tasks)
}

func (e *evalSpec) validate() error {
	if len(e.texts) == 0 {
		if len(e.datasets) > 0 {
			return fmt.Errorf("--eval-dataset needs --eval-text")
		}
		return nil
	}
	if len(e.datasets) != 1 && len(e.datasets) != len(e.texts) {
		return fmt.Errorf("give one --eval-dataset, or one per --eval-text (%d texts, %d datasets)", len(e.texts), len(e.datasets))
	}
	for _, t := range e.texts {
		if _, err := os.Stat(t); err != nil {
			return fmt.Errorf("--eval-text: %w", err)
		}
	}
	for _, d := range e.datasets {
		if d != eval.WikiText2 && d != eval.C4 && d != eval.Lines {
			return fmt.Errorf("unknown --eval-dataset %q (want wikitext2, c4 or lines)", d)
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
func (e *evalSpec) zeroShot(label string, w *nn.Weights[float32], tok tokenizer.Tokenizer, rep *report.Report) error {
	if !e.tasks.enabled() {
		return nil
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
// (label: dense, pruned).
func (e *evalSpec) score(label string, w *nn.Weights[float32], tok tokenizer.Tokenizer, tokName string, seqlen int, rep *report.Report) error {
	evs, err := e.run(label, w, tok, tokName, seqlen)
	rep.Evals = append(rep.Evals, evs...)
	if err != nil {
		return err
	}
	return e.zeroShot(label, w, tok, rep)
}

// run scores a model on every requested text.
func (e *evalSpec) run(label string, w *nn.Weights[float32], tok eval.Tokenizer, tokName string, seqlen int) ([]report.Eval, error) {
	var out []report.Eval
	if e.seqlen > 0 {
		seqlen = e.seqlen
	}
	for i, text := range e.texts {
		r, err := perplexityOf(label, w, tok, e.dataset(i), text, seqlen)
		if err != nil {
			return nil, err
		}
		r.Manifest.Tokenizer = tokName
		out = append(out, r)
	}
	return out, nil
}

func perplexityOf(label string, w *nn.Weights[float32], tok eval.Tokenizer, dataset, text string, seqlen int) (report.Eval, error) {
	return perplexityLimited(label, w, tok, dataset, text, seqlen, 0, 0)
}

// perplexityLimited is perplexityOf on the first limit windows (0: all),
// batch windows per forward pass (0: about 4096 tokens' worth).
func perplexityLimited(label string, w *nn.Weights[float32], tok eval.Tokenizer, dataset, text string, seqlen, limit, batch int) (report.Eval, error) {
	ws, man, err := eval.EvalWindows(dataset, text, tok, seqlen)
	if err != nil {
		return report.Eval{}, err
	}
	if limit > 0 && limit < len(ws) {
		ws = ws[:limit]
		man.Note += fmt.Sprintf(" limited to the first %d of %d windows", limit, man.Windows)
		man.Windows = limit
	}
	if batch == 0 {
		batch = eval.BatchFor(seqlen)
	}
	start := time.Now()
	bar := newProgress(len(ws), fmt.Sprintf("ppl %s %s", label, filepath.Base(text)))
	res, err := eval.Perplexity(nn.NewStage(w), ws, batch, func(d, t int) { bar.Set(d, "") })
	bar.Done()
	if err != nil {
		return report.Eval{}, err
	}
	logf("ppl %-6s %s (%s, seqlen %d, %d windows): %.4f", label, text, dataset, seqlen, len(ws), res.PPL())
	return report.Eval{Model: label, Manifest: man, PPL: res.PPL(), NLL: res.Sum / float64(res.Count),
		Predicted: res.Count, Seconds: time.Since(start).Seconds()}, nil
}

// parsePattern reads "N:M".
func parsePattern(s string) (n, m int, err error) {
	a, b, ok := strings.Cut(s, ":")
	if ok {
		n, err = strconv.Atoi(a)
		if err == nil {
			m, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil {
		return 0, 0, fmt.Errorf("pattern %q: want N:M, e.g. 2:4", s)
	}
	if n < 1 || m < 2 || n >= m {
		return 0, 0, fmt.Errorf("pattern %s: need 1 ≤ N < M", s)
	}
	return n, m, nil
}

func pruneCmd() *cobra.Command {
	var f pruneFlags
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Prune with a baseline (magnitude, wanda, ria, sparsegpt): unstructured or N:M",
		Long: `Prunes every decoder layer's q, k, v, o, gate, up and down projections with the
sequential layer-wise protocol of Wanda/SparseGPT (DESIGN §2.5): calibration windows pass
through the model one layer at a time; each layer's input statistics are collected, its
matrices pruned, and its outputs recomputed with the pruned weights for the next layer.

  magnitude  |W|, per matrix              wanda  |W|·‖X_j‖, per output row
  ria        relative importance × ‖X_j‖^0.5, per matrix
  sparsegpt  OBS reconstruction (Hessian 2XᵀX/n, damp 0.01, 128-column blocks; weights change)

The output directory holds the pruned model in the input's layout and file names (zeros
where pruned), masks.safetensors and report.json; it is written to a temporary directory
and renamed at the end, so a failed run leaves nothing behind.`,
		Example: `  unipruning prune --model stories260K.bin --tokenizer tok512.bin --method wanda --sparsity 0.5 \
      --calib TinyStories-train-head-944K.txt --calib-format lines --nsamples 128 --seqlen 256 \
      --out out/wanda50 --eval-dataset lines --eval-text TinyStories-validation-head-794K.txt`,
		RunE: func(cmd *cobra.Command, args []string) error {
			f.sparsity = -1
			if cmd.Flags().Changed("sparsity") {
				f.sparsity, _ = cmd.Flags().GetFloat64("sparsity")
			}
			return runPrune(f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.model, "model", "", "model: HF directory or llama2.c .bin file (required)")
	fl.StringVar(&f.tokenizer, "tokenizer", "", "tokenizer file when it is not in the model directory")
	fl.StringVar(&f.method, "method", "", "magnitude, wanda, ria or sparsegpt (required)")
	fl.Float64("sparsity", 0, "unstructured sparsity in [0,1), e.g. 0.5 (this or --pattern)")
	fl.StringVar(&f.pattern, "pattern", "", "N:M semi-structured pattern, e.g. 2:4 (keep N of every M inputs)")
	fl.StringVar(&f.calib, "calib", "", "calibration text: a C4-style .jsonl (--calib-format c4) or a text file (lines)")
	fl.StringVar(&f.calibFormat, "calib-format", "c4", "calibration sampler: c4 or lines")
	fl.IntVar(&f.nsamples, "nsamples", 128, "calibration windows")
	fl.IntVar(&f.seqlen, "seqlen", 0, "calibration window length (default: min(2048, the model's context))")
	fl.Uint64Var(&f.seed, "seed", 0, "calibration sampling seed")
	fl.BoolVar(&f.byRow, "by-row", false, "unstructured: compare within each output row")
	fl.BoolVar(&f.byMatrix, "by-matrix", false, "unstructured: compare within each matrix")
	fl.IntVar(&f.batch, "batch", 8, "calibration windows per forward pass")
	fl.StringVar(&f.out, "out", "", "output directory (required; must not exist unless --force)")
	fl.BoolVar(&f.force, "force", false, "replace an existing output directory")
	fl.BoolVar(&f.json, "json", false, "print report.json on stdout")
	fl.StringVar(&f.dumpCalib, "dump-calib", "", "also write the calibration windows (token ids) to this JSON file, for independent re-computation")
	f.evals.register(cmd)
	return cmd
}

// baselineConfig checks the flags and builds the engine's settings, before
// any work is done.
func (f *pruneFlags) baselineConfig() (layerwise.Config, error) {
	var c layerwise.Config
	m, err := layerwise.ParseMethod(f.method)
	if err != nil {
		return c, err
	}
	c.Method, c.Batch = m, f.batch
	switch {
	case f.pattern != "" && f.sparsity >= 0:
		return c, fmt.Errorf("give --sparsity or --pattern, not both")
	case f.pattern != "":
		if c.N, c.M, err = parsePattern(f.pattern); err != nil {
			return c, err
		}
	case f.sparsity < 0:
		return c, fmt.Errorf("--sparsity or --pattern is required")
	default:
		c.Sparsity = f.sparsity
	}
	if f.byRow && f.byMatrix {
		return c, fmt.Errorf("--by-row and --by-matrix exclude each other")
	}
	if f.byRow {
		c.Group = layerwise.ByRow
	} else if f.byMatrix {
		c.Group = layerwise.ByMatrix
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	if f.out == "" {
		return c, fmt.Errorf("--out is required")
	}
	if _, err := os.Stat(f.out); err == nil && !f.force {
		return c, fmt.Errorf("output %s already exists (pass --force to replace it)", f.out)
	}
	if f.calib == "" {
		return c, fmt.Errorf("--calib is required")
	}
	if f.nsamples < 1 {
		return c, fmt.Errorf("--nsamples must be at least 1")
	}
	return c, f.evals.validate()
}

func runPrune(f pruneFlags) error {
	cfg, err := f.baselineConfig()
	if err != nil {
		return err
	}
	start := time.Now()
	m, err := openModel(f.model, f.tokenizer, f.evals.any() && !f.evals.skipDense)
	if err != nil {
		return err
	}
	defer m.ck.Close()
	if f.seqlen, err = windowLength(f.seqlen, m.ck.Config); err != nil {
		return err
	}
	windows, man, err := eval.CalibWindows(f.calibFormat, f.calib, m.tok, f.nsamples, f.seqlen, f.seed)
	if err != nil {
		return err
	}
	man.Tokenizer = m.ck.TokenizerPath
	if f.dumpCalib != "" {
		if err := writeJSONFile(f.dumpCalib, map[string]any{"manifest": man, "windows": windows}); err != nil {
			return err
		}
	}
	rep := &report.Report{Tool: "unipruning", Command: "prune", Model: f.model, Format: string(m.ck.Format),
		Tokenizer: m.ck.TokenizerPath, Method: string(cfg.Method), Calibration: man, Group: cfg.Group,
		Seconds: map[string]float64{}, Machine: provenance.ThisMachine(nn.ActiveKernel())}
	if cfg.M > 0 {
		rep.Pattern = f.pattern
	} else {
		rep.Sparsity = &cfg.Sparsity
	}
	if m.w != nil {
		if err := f.evals.score("dense", m.w, m.tok, m.ck.TokenizerPath, f.seqlen, rep); err != nil {
			return err
		}
		m.w = nil // free the dense copy; the engine streams layers
	}
	err = model.WriteDirAtomically(f.out, f.force, func(tmp string) error {
		return pruneInto(tmp, m, windows, cfg, rep, &f)
	})
	if err != nil {
		return err
	}
	rep.Seconds["total"] = time.Since(start).Seconds()
	if err := rep.Write(filepath.Join(f.out, "report.json")); err != nil {
		return err
	}
	return finishReport(rep, f.out, f.json)
}

// pruneInto runs the engine and writes model, masks and evals into dir.
func pruneInto(dir string, m *loaded, windows [][]int32, cfg layerwise.Config, rep *report.Report, f *pruneFlags) error {
	spill, err := model.NewSpill(filepath.Join(dir, ".pruned.spill"))
	if err != nil {
		return err
	}
	defer spill.Close()
	masks, err := maskfile.NewWriter(map[string]string{"method": string(cfg.Method)})
	if err != nil {
		return err
	}
	bar := newProgress(m.ck.Config.Layers, "prune "+string(cfg.Method))
	t0 := time.Now()
	layers, err := layerwise.Run(m.ck, windows, cfg, func(t model.Target, w []float32, mask *prune.Mask) error {
		if err := masks.Add(t.TensorName(), mask); err != nil {
			return err
		}
		return spill.Put(t.TensorName(), w)
	}, func(l int, r layerwise.LayerResult) { bar.Set(l+1, fmt.Sprintf("layer %d %.1fs", l, r.Seconds)) })
	bar.Done()
	if err != nil {
		return err
	}
	rep.Seconds["calibrate_and_prune"] = time.Since(t0).Seconds()
	for _, lr := range layers {
		rep.Seconds[fmt.Sprintf("layer_%d", lr.Layer)] = lr.Seconds
		for _, mr := range lr.Matrices {
			rep.Matrices = append(rep.Matrices, report.Matrix{Name: mr.Name, Layer: lr.Layer, Out: mr.Out, In: mr.In,
				Kept: mr.Kept, Sparsity: mr.Sparsity, Dense: mr.Dense, Reason: mr.Reason})
		}
	}
	rep.Summarize()
	return writeOutput(dir, m, spillFill(spill), masks, rep, &f.evals, f.seqlen)
}

// writeOutput saves the pruned checkpoint, filling each target tensor with
// fill (false leaves a tensor as the input has it), then the mask sidecar, and
// evaluates the result when asked. prune and extract share it so that their
// outputs cannot drift apart.
func writeOutput(dir string, m *loaded, fill func(name string, data []float32) (bool, error), masks *maskfile.Writer, rep *report.Report, ev *evalSpec, seqlen int) error {
	t0 := time.Now()
	if err := model.SaveLike(m.ck, dir, fill); err != nil {
		return err
	}
	if err := masks.Write(filepath.Join(dir, "masks.safetensors")); err != nil {
		return err
	}
	rep.Seconds["write"] = time.Since(t0).Seconds()
	if err := plotSparsity(dir, rep); err != nil {
		return err
	}
	return evalOutput(dir, m, rep, ev, seqlen)
}

// spillFill reads pruned targets back from the layer-wise engine's spill.
func spillFill(spill *model.Spill) func(string, []float32) (bool, error) {
	return func(name string, data []float32) (bool, error) {
		if !spill.Has(name) {
			return false, nil
		}
		return true, spill.Get(name, data)
	}
}

// evalOutput reloads a written output and evaluates it as asked.
func evalOutput(dir string, m *loaded, rep *report.Report, ev *evalSpec, seqlen int) error {
	if !ev.any() {
		return nil
	}
	out, err := openModel(filepath.Join(dir, outputModelName(m.ck)), "", true)
	if err != nil {
		return fmt.Errorf("reloading the pruned output: %w", err)
	}
	defer out.ck.Close()
	return ev.score("pruned", out.w, out.tok, m.ck.TokenizerPath, seqlen, rep)
}

// outputModelName is the model path inside an output directory.
func outputModelName(ck *model.Checkpoint) string {
	if ck.Format == model.FormatLlama2C {
		return filepath.Base(ck.Path)
	}
	return "."
}

func finishReport(rep *report.Report, out string, asJSON bool) error {
	if asJSON {
		return printJSON(rep)
	}
	fmt.Printf("wrote %s: %s, total sparsity %.4f over %d target weights", out, rep.Method, rep.Total, rep.Targets)
	if len(rep.Dense) > 0 {
		fmt.Printf(" (%d matrices left dense: %s)", len(rep.Dense), strings.Join(rep.Dense, ", "))
	}
	fmt.Println()
	for _, e := range rep.Evals {
		fmt.Printf("ppl %-6s %-9s %s: %.4f\n", e.Model, e.Manifest.Dataset, filepath.Base(e.Manifest.Path), e.PPL)
	}
	for _, label := range []string{"dense", "pruned"} {
		if zs := rep.ZeroShot[label]; zs != nil {
			fmt.Printf("zero-shot (%s model):\n", label)
			printTaskTable(zs)
		}
	}
	return nil
}

// plotSparsity draws the output's per-matrix sparsity (sparsity.png).
func plotSparsity(dir string, rep *report.Report) error {
	title := fmt.Sprintf("%s: per-matrix sparsity (total %.3f)", rep.Method, rep.Total)
	return report.PlotMatrixSparsity(rep, title, filepath.Join(dir, "sparsity.png"))
}
