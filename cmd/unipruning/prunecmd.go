package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/eval"
	"github.com/unipruning/unipruning/model"
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
	sparsity                               *float64 // nil: not given
	nsamples, seqlen, batch                int
	seed                                   uint64
	byRow, byMatrix, force, json           bool
	saveCompressed                         bool
	evals                                  evalSpec
	dumpCalib                              string
}

func pruneCmd() *cobra.Command {
	var f pruneFlags
	var sparsity float64
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

Every method prunes exactly round(numel·p) weights of each matrix, so they compare fairly:
per-row ranking (wanda, --by-row) spreads the matrix's count over the rows, the remainder one
each to the first rows (largest remainder, ties to the lower row).

The output directory holds the pruned model in the input's layout and file names (zeros
where pruned), masks.safetensors and report.json; it is written to a temporary directory
and renamed at the end, so a failed run leaves nothing behind.`,
		Example: `  unipruning prune --model stories260K.bin --tokenizer tok512.bin --method wanda --sparsity 0.5 \
      --calib TinyStories-train-head-944K.txt --calib-format lines --nsamples 128 --seqlen 256 \
      --out out/wanda50 --eval-dataset lines --eval-text TinyStories-validation-head-794K.txt`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("sparsity") {
				f.sparsity = &sparsity
			}
			return runPrune(f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.model, "model", "", "model: HF directory or llama2.c .bin file")
	fl.StringVar(&f.tokenizer, "tokenizer", "", "tokenizer file when it is not in the model directory (default: the model's own)")
	fl.StringVar(&f.method, "method", "", "magnitude, wanda, ria or sparsegpt")
	fl.Float64Var(&sparsity, "sparsity", 0, "unstructured sparsity in [0, 1), e.g. 0.5 (no default: give this or --pattern)")
	fl.StringVar(&f.pattern, "pattern", "", "N:M semi-structured pattern, e.g. 2:4 (keep N of every M inputs)")
	fl.StringVar(&f.calib, "calib", "", "calibration text: a C4-style .jsonl (--calib-format c4) or a text file (lines)")
	fl.StringVar(&f.calibFormat, "calib-format", "c4", "calibration sampler: c4 or lines")
	fl.IntVar(&f.nsamples, "nsamples", 128, "calibration windows")
	fl.IntVar(&f.seqlen, "seqlen", 0, "calibration window length (default: min(2048, the model's context))")
	fl.Uint64Var(&f.seed, "seed", 0, "calibration sampling seed")
	fl.BoolVar(&f.byRow, "by-row", false, "unstructured: compare within each output row")
	fl.BoolVar(&f.byMatrix, "by-matrix", false, "unstructured: compare within each matrix")
	fl.IntVar(&f.batch, "batch", 8, "calibration windows per forward pass")
	fl.StringVar(&f.out, "out", "", "output directory (must not exist unless --force)")
	fl.BoolVar(&f.force, "force", false, "replace an existing output directory")
	fl.BoolVar(&f.json, "json", false, "print report.json on stdout as one JSON object")
	fl.BoolVar(&f.saveCompressed, "save-compressed", false, saveCompressedHelp)
	fl.StringVar(&f.dumpCalib, "dump-calib", "", "also write the calibration windows (token ids) to this JSON file, for independent re-computation (default: none)")
	f.evals.register(cmd)
	markRequired(cmd, "model", "method", "calib", "out")
	return cmd
}

// baselineConfig checks the flags and builds the engine's settings, before
// any work is done.
func (f *pruneFlags) baselineConfig() (layerwise.Config, error) {
	var c layerwise.Config
	if f.method == "" {
		return c, missingFlag("method", "magnitude, wanda, ria or sparsegpt")
	}
	m, err := layerwise.ParseMethod(f.method)
	if err != nil {
		return c, badFlag("method", f.method, "unknown method (want magnitude, wanda, ria or sparsegpt)")
	}
	c.Method, c.Batch = m, f.batch
	switch {
	case f.sparsity != nil && f.pattern != "":
		return c, usageError{fmt.Errorf("give --sparsity or --pattern, not both")}
	case f.pattern != "":
		if c.N, c.M, err = parsePattern("pattern", f.pattern); err != nil {
			return c, err
		}
	case f.sparsity == nil:
		return c, missingFlag("sparsity", "give --sparsity P (unstructured) or --pattern N:M")
	default:
		if err := checkFraction("sparsity", *f.sparsity); err != nil {
			return c, err
		}
		c.Sparsity = *f.sparsity
	}
	if f.byRow && f.byMatrix {
		return c, conflictingFlags("by-row", "by-matrix")
	}
	if f.byRow {
		c.Group = layerwise.ByRow
	} else if f.byMatrix {
		c.Group = layerwise.ByMatrix
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	switch {
	case f.out == "":
		return c, missingFlag("out", "the output directory")
	case f.calib == "":
		return c, missingFlag("calib", "the calibration text")
	case f.nsamples < 1:
		return c, badFlag("nsamples", f.nsamples, "must be positive")
	case f.batch < 1:
		return c, badFlag("batch", f.batch, "must be positive")
	}
	if _, err := os.Stat(f.out); err == nil && !f.force {
		return c, fmt.Errorf("output %s already exists (pass --force to replace it)", f.out)
	}
	return c, f.evals.validate()
}

func runPrune(f pruneFlags) error {
	cfg, err := f.baselineConfig()
	if err != nil {
		return err
	}
	start := time.Now()
	m, err := openModel(f.model, f.tokenizer, false)
	if err != nil {
		return err
	}
	defer m.ck.Close()
	if err := checkCompressible(m.ck, f.saveCompressed); err != nil {
		return err
	}
	if f.seqlen, err = windowLength(f.seqlen, m.ck.Config); err != nil {
		return err
	}
	windows, man, err := eval.CalibWindows(f.calibFormat, f.calib, m.tok, f.nsamples, f.seqlen, f.seed)
	if err != nil {
		return err
	}
	man.Tokenizer = m.ck.TokenizerPath
	need := max(layerwise.EstimateFootprint(m.ck.Config, len(windows), f.seqlen, cfg).Total(), saveFootprint(m.ck))
	if err := checkFits(fmt.Sprintf("prune %s (%d windows of %d tokens, one layer resident)", cfg.Method, len(windows), f.seqlen), need); err != nil {
		return err
	}
	if f.dumpCalib != "" {
		if err := writeJSONFile(f.dumpCalib, map[string]any{"manifest": man, "windows": windows}); err != nil {
			return err
		}
	}
	rep := &report.Report{Tool: "unipruning", Command: "prune", Model: f.model, Format: string(m.ck.Format),
		Tokenizer: m.ck.TokenizerPath, Method: string(cfg.Method), Calibration: man, Group: cfg.Group,
		Seconds: map[string]float64{}, Machine: provenance.ThisMachine(nn.ActiveKernel())}
	if cfg.M > 0 {
		rep.Pattern = fmt.Sprintf("%d:%d", cfg.N, cfg.M)
	} else {
		rep.Sparsity = &cfg.Sparsity
	}
	if f.evals.any() && !f.evals.skipDense {
		if err := f.evals.score("dense", m, m.ck.TokenizerPath, f.seqlen, rep); err != nil {
			return err
		}
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
	return writeOutput(dir, m, spillFill(spill), masks, rep, &f.evals, f.seqlen, f.saveCompressed)
}
