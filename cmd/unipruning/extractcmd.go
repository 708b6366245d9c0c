package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/eval"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/provenance"
	"github.com/unipruning/unipruning/prune"
	"github.com/unipruning/unipruning/prune/extract"
	"github.com/unipruning/unipruning/prune/gammastore"
	"github.com/unipruning/unipruning/prune/layerwise"
	"github.com/unipruning/unipruning/prune/maskfile"
	"github.com/unipruning/unipruning/report"
)

type extractFlags struct {
	run, model, tokenizer, out string
	sparsities, patterns       string
	allocation                 string
	byRow, force, json         bool
	saveCompressed             bool
	maxSparsity                float64
	reconstruct                string // none | obs
	evals                      evalSpec
}

// Reconstruction modes of extract and run.
const (
	reconstructNone = "none"
	reconstructOBS  = "obs"
)

func (f *extractFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.sparsities, "sparsity", "", "comma-separated unstructured sparsities in [0, 1), e.g. 0.5,0.6,0.7 (give this, --pattern or both)")
	fl.StringVar(&f.patterns, "pattern", "", "comma-separated N:M patterns (1 ≤ N < M), e.g. 2:4,4:8")
	fl.StringVar(&f.allocation, "allocation", extract.Uniform, "unstructured allocation: uniform (each matrix at the target, as the released code) or global (one ranking over all matrices)")
	fl.BoolVar(&f.byRow, "by-row", false, "uniform allocation: rank within each output row")
	fl.BoolVar(&f.saveCompressed, "save-compressed", false, saveCompressedHelp)
	fl.Float64Var(&f.maxSparsity, "max-layer-sparsity", 0, "global allocation: cap on any matrix's sparsity (guards against layer collapse; 0 = none)")
	fl.StringVar(&f.reconstruct, "reconstruct", reconstructNone, "none: the masks applied to the original weights; obs: also update the kept weights layer by layer with SparseGPT's least-squares (OBS) solve for the fixed mask, on the search's calibration windows (the layer-wise protocol: one layer at a time, each layer fed the previous pruned layer's outputs)")
	f.evals.register(cmd)
}

func extractCmd() *cobra.Command {
	var f extractFlags
	cmd := &cobra.Command{
		Use:   "extract",
		Short: "Masks for any sparsity from a search run's Γ, applied to the original weights",
		Long: `Reads the Γ store of a search run and writes, for every requested target, a pruned
copy of the ORIGINAL model (the weights the search started from) with masks from |Γ|
(DESIGN §2.4). No forward pass is needed, so any number of sparsities and N:M patterns
come out of one search. Each target gets <out>/sparsity-0.60 or <out>/pattern-2of4 with the
model in the input's layout, masks.safetensors and report.json.

--reconstruct obs keeps each target's mask and updates the weights it keeps with
SparseGPT's least-squares (OBS) solve for that fixed mask, layer by layer on the search's
calibration windows (each layer sees the previous pruned, reconstructed layer's outputs):
one decoder layer and the windows' activations in memory, as the layer-wise baselines.`,
		Example: `  unipruning extract --run runs/g --sparsity 0.5,0.6,0.7 --pattern 2:4,4:8 --out out/g
  unipruning extract --run runs/g --sparsity 0.7 --reconstruct obs --out out/g-obs`,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := runExtract(f)
			return err
		},
	}
	cmd.Flags().StringVar(&f.run, "run", "", "search run directory holding gamma.json")
	cmd.Flags().StringVar(&f.model, "model", "", "the model the search ran on (default: the path recorded in the run)")
	cmd.Flags().StringVar(&f.tokenizer, "tokenizer", "", "tokenizer (default: the run's)")
	cmd.Flags().StringVar(&f.out, "out", "", "output directory; one subdirectory per target: sparsity-0.60, pattern-2of4")
	cmd.Flags().BoolVar(&f.force, "force", false, "replace an existing output directory")
	cmd.Flags().BoolVar(&f.json, "json", false, `print one JSON object on stdout: {"run", "out", "reports": {target: report.json}}`)
	f.register(cmd)
	markRequired(cmd, "run", "out")
	return cmd
}

// targets parses --sparsity and --pattern into validated targets.
func (f *extractFlags) targets() ([]extract.Target, error) {
	var ts []extract.Target
	for _, s := range splitList(f.sparsities) {
		p, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, badFlag("sparsity", s, "not a number")
		}
		if err := checkFraction("sparsity", p); err != nil {
			return nil, err
		}
		ts = append(ts, extract.Target{Sparsity: p, Allocation: f.allocation, ByRow: f.byRow, MaxMatrixSparsity: f.maxSparsity})
	}
	for _, s := range splitList(f.patterns) {
		n, m, err := parsePattern("pattern", s)
		if err != nil {
			return nil, err
		}
		ts = append(ts, extract.Target{N: n, M: m})
	}
	if len(ts) == 0 {
		return nil, missingFlag("sparsity", "give at least one --sparsity or --pattern")
	}
	if f.reconstruct != "" && f.reconstruct != reconstructNone && f.reconstruct != reconstructOBS {
		return nil, badFlag("reconstruct", f.reconstruct, "want none or obs")
	}
	seen := map[string]bool{}
	for _, t := range ts {
		if err := t.Validate(); err != nil {
			return nil, usageError{err}
		}
		if seen[t.Name()] {
			return nil, usageError{fmt.Errorf("target %s given twice", t.Name())}
		}
		seen[t.Name()] = true
	}
	return ts, nil
}

func runExtract(f extractFlags) ([]*report.Report, error) {
	targets, err := f.targets()
	if err != nil {
		return nil, err
	}
	switch {
	case f.run == "":
		return nil, missingFlag("run", "the search run directory")
	case f.out == "":
		return nil, missingFlag("out", "the output directory")
	}
	if _, err := os.Stat(f.out); err == nil && !f.force {
		return nil, fmt.Errorf("output %s already exists (pass --force to replace it)", f.out)
	}
	if err := f.evals.validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	store, err := gammastore.Open(f.run)
	if err != nil {
		return nil, err
	}
	var spec job.Spec
	if err := json.Unmarshal(store.Spec, &spec); err != nil {
		return nil, fmt.Errorf("Γ store spec: %w", err)
	}
	if f.model == "" {
		f.model = spec.Model
	}
	if f.tokenizer == "" {
		f.tokenizer = spec.Tokenizer
	}
	m, err := openModel(f.model, f.tokenizer, false)
	if err != nil {
		return nil, err
	}
	defer m.ck.Close()
	if err := checkCompressible(m.ck, f.saveCompressed); err != nil {
		return nil, err
	}
	if err := store.CheckModel(m.ck); err != nil {
		return nil, err
	}
	logf("Γ store %s loaded and checked in %.1fs", f.run, time.Since(start).Seconds())
	var calib [][]int32
	if f.reconstruct == reconstructOBS {
		// The search's own windows: same text, sampler, seed and count.
		if calib, _, err = eval.CalibWindows(spec.CalibFormat, spec.CalibPath, m.tok, spec.Steps, spec.Seqlen, spec.Seed); err != nil {
			return nil, err
		}
	}
	dense := &report.Report{} // the dense model's scores, shared by every target's report
	if f.evals.any() && !f.evals.skipDense {
		if err := f.evals.score("dense", m, m.ck.TokenizerPath, spec.Seqlen, dense); err != nil {
			return nil, err
		}
	}
	var reps []*report.Report
	err = model.WriteDirAtomically(f.out, f.force, func(tmp string) error {
		for _, t := range targets {
			rep, err := extractOne(filepath.Join(tmp, t.Name()), m, store, t, &spec, &f, dense, calib)
			if err != nil {
				return fmt.Errorf("%s: %w", t.Name(), err)
			}
			rep.Seconds["total"] = time.Since(start).Seconds()
			if err := rep.Write(filepath.Join(tmp, t.Name(), "report.json")); err != nil {
				return err
			}
			reps = append(reps, rep)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if f.json {
		byName := map[string]*report.Report{}
		for i, r := range reps {
			byName[targets[i].Name()] = r
		}
		return reps, printJSON(map[string]any{"run": f.run, "out": f.out, "reports": byName})
	}
	for i, r := range reps {
		if err := finishReport(r, filepath.Join(f.out, targets[i].Name()), false); err != nil {
			return nil, err
		}
	}
	return reps, nil
}

// gammaMatrices lists the model's target matrices with their Γ from store,
// in model.Targets order (extract.Masks' input).
func gammaMatrices(c *model.Config, store *gammastore.Store) []extract.Matrix {
	var ms []extract.Matrix
	for _, tg := range model.Targets(c) {
		out, in := tg.Matrix.Shape(c)
		ms = append(ms, extract.Matrix{Name: tg.TensorName(), Out: out, In: in, Gamma: store.Gamma[tg.TensorName()]})
	}
	return ms
}

// extractOne writes one target's pruned model, masks and report into dir.
func extractOne(dir string, m *loaded, store *gammastore.Store, t extract.Target, spec *job.Spec, f *extractFlags, dense *report.Report, calib [][]int32) (*report.Report, error) {
	t0 := time.Now()
	ms := gammaMatrices(m.ck.Config, store)
	results, err := extract.Masks(ms, t)
	if err != nil {
		return nil, err
	}
	rep := &report.Report{Tool: "unipruning", Command: "extract", Model: f.model, Format: string(m.ck.Format),
		Tokenizer: m.ck.TokenizerPath, Method: "unipruning-" + spec.Mode, Calibration: store.Calibration,
		Settings: map[string]any{"run": f.run, "spec": spec, "reconstruct": f.reconstruct}, Seconds: map[string]float64{}, Machine: provenance.ThisMachine(nn.ActiveKernel()),
		Evals: slices.Clone(dense.Evals), ZeroShot: maps.Clone(dense.ZeroShot)}
	if ch, err := readLRChoice(f.run); err != nil {
		return nil, err
	} else if ch != nil {
		rep.Settings["lr_auto"] = ch // the search's rate was chosen by probes
	}
	if t.M > 0 {
		rep.Pattern = fmt.Sprintf("%d:%d", t.N, t.M)
	} else {
		sp := t.Sparsity
		rep.Sparsity, rep.Allocation = &sp, t.Allocation
		if t.Allocation == "" {
			rep.Allocation = extract.Uniform
		}
	}
	masks, err := maskfile.NewWriter(map[string]string{"method": rep.Method, "target": t.Name()})
	if err != nil {
		return nil, err
	}
	byName := map[string]extract.Result{}
	for i, r := range results {
		tg := model.Targets(m.ck.Config)[i]
		byName[ms[i].Name] = r
		kept := r.Mask.Kept()
		rep.Matrices = append(rep.Matrices, report.Matrix{Name: ms[i].Name, Layer: tg.Layer, Out: ms[i].Out, In: ms[i].In,
			Kept: kept, Sparsity: 1 - float64(kept)/float64(ms[i].Out*ms[i].In), Dense: r.Dense, Reason: r.Reason})
		if err := masks.Add(ms[i].Name, r.Mask); err != nil {
			return nil, err
		}
	}
	rep.Summarize()
	rep.Seconds["masks"] = time.Since(t0).Seconds()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	fill := maskedFill(byName)
	if calib != nil {
		spill, err := model.NewSpill(filepath.Join(dir, ".reconstructed.spill"))
		if err != nil {
			return nil, err
		}
		defer spill.Close()
		if err := reconstructInto(spill, m, calib, byName, rep); err != nil {
			return nil, err
		}
		fill = spillFill(spill)
	}
	if err := writeOutput(dir, m, fill, masks, rep, &f.evals, spec.Seqlen, f.saveCompressed); err != nil {
		return nil, err
	}
	return rep, nil
}

// reconstructInto runs the layer-wise engine with the extracted masks
// fixed and puts the reconstructed weights into spill.
func reconstructInto(spill *model.Spill, m *loaded, calib [][]int32, byName map[string]extract.Result, rep *report.Report) error {
	t0 := time.Now()
	bar := newProgress(m.ck.Config.Layers, "reconstruct (obs)")
	_, err := layerwise.Run(m.ck, calib, layerwise.Config{
		Fixed: func(t model.Target) (*prune.Mask, bool, string, error) {
			r, ok := byName[t.TensorName()]
			if !ok {
				return nil, false, "", fmt.Errorf("no mask for %s", t.TensorName())
			}
			return r.Mask, r.Dense, r.Reason, nil
		},
	}, func(t model.Target, w []float32, _ *prune.Mask) error {
		return spill.Put(t.TensorName(), w)
	}, func(l int, r layerwise.LayerResult) { bar.Set(l+1, fmt.Sprintf("layer %d %.1fs", l, r.Seconds)) })
	bar.Done()
	rep.Seconds["reconstruct"] = time.Since(t0).Seconds()
	return err
}
