package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/coordinator"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/prune"
	"github.com/unipruning/unipruning/prune/extract"
	"github.com/unipruning/unipruning/prune/gammastore"
	"github.com/unipruning/unipruning/shard"
	"github.com/unipruning/unipruning/shardrpc"
	"github.com/unipruning/unipruning/transport"
)

type searchFlags struct {
	spec          job.Spec
	out           string
	shards        int
	resume, force bool
	json          bool
	lrAuto        bool             // --lr auto: choose the rate by probes (lrauto.go)
	lrTargets     []extract.Target // targets the probes are scored at (nil: defaultLRTargets)
	dryRun        bool
	// changed reports whether a flag was given on the command line (nil:
	// every spec field counts as given, as when called from a test).
	changed func(name string) bool
}

func (f *searchFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	s := &f.spec
	fl.StringVar(&s.Model, "model", "", "model: HF directory or llama2.c .bin file (required unless --resume)")
	fl.StringVar(&s.Tokenizer, "tokenizer", "", "tokenizer file when it is not in the model directory (default: the model's own)")
	fl.StringVar(&s.Mode, "mode", job.ModeGlobal, "reference (AdamW + per-matrix λ-quantile, as the released code), global (AdamW + one model-wide threshold) or frozen (no weight update, forward only, model-wide threshold)")
	fl.StringVar((*string)(&s.Metric), "metric", string(prune.MetricStochRIA), "local saliency metric S(W): stochria (released code), ria, wanda or magnitude")
	fl.Float64Var(&s.Kappa, "kappa", 0.01, "mirror-descent step κ in z ← z + κ(S − Γ)")
	fl.Float64Var(&s.Lambda, "lambda", 0.001, "threshold budget λ: the fraction of weights whose |z| falls below τ each step")
	s.LR = 1e-4
	fl.Var(lrFlag{&s.LR, &f.lrAuto}, "lr", "AdamW peak learning rate (10% linear warm-up, then linear decay to 0), or auto: chosen from calibration data by short probe searches over 1e-4 … 3e-2, scored by the held-out calibration loss of the original model under each probe's masks (probe table in <out>/lr-auto.json); the default is the released code's, tuned for 7B+ models")
	fl.Float64Var(&s.ClipNorm, "clip", 1.0, "gradient clipping at this global norm")
	fl.Float64Var(&s.Lambda2, "lambda2", 0, "ProxSparse N:M (2:4) regulariser on the weights after each AdamW step (0 = off; the released 2:4 script uses 0.001)")
	fl.IntVar(&s.Steps, "steps", 128, "search steps; each uses one calibration window")
	fl.Uint64Var(&s.Seed, "seed", 0, "seed of calibration sampling and of the stochria subsets")
	fl.StringVar(&s.CalibPath, "calib", "", "calibration text: C4-style .jsonl (--calib-format c4) or a text file (lines) (required unless --resume)")
	fl.StringVar(&s.CalibFormat, "calib-format", "c4", "calibration sampler: c4 or lines")
	fl.IntVar(&s.Seqlen, "seqlen", 0, "calibration window length (default: min(2048, the model's context))")
	fl.IntVar(&s.Chunk, "chunk", 0, "split each window into chunks of N tokens, pipelined across shards (shard s+1 works on chunk c while shard s works on c+1); a run setting like --seed: Γ is bitwise the same for any --shards and across --resume at the same --chunk, not across chunk sizes (0 or ≥ --seqlen: one chunk per window)")
	fl.IntVar(&s.CheckpointEvery, "checkpoint-every", 16, "checkpoint every C steps (0 = never); --resume continues from the newest")
	fl.IntVar(&f.shards, "shards", 1, "in-process shards (contiguous layer ranges balanced by parameter count)")
	fl.StringVar(&f.out, "out", "", "run directory: Γ store (gamma.json, gamma/), checkpoints, ledger")
	fl.BoolVar(&f.resume, "resume", false, "continue an interrupted search in --out from its newest checkpoint (with no other flags: the run's own settings)")
	fl.BoolVar(&f.force, "force", false, "start afresh, deleting an existing run directory")
	fl.BoolVar(&f.json, "json", false, "print the Γ store manifest (gamma.json) on stdout as one JSON object")
	fl.BoolVar(&f.dryRun, "dry-run", false, "allocate nothing: print the memory the search would need, item by item and per shard (with --json: one JSON object), and exit")
}

func searchCmd() *cobra.Command {
	var f searchFlags
	cmd := &cobra.Command{
		Use:   "search",
		Short: "UniPruning search stage: calibrate the saliency path Γ (mirror descent, one model-wide budget)",
		Long: `Runs the UniPruning search stage (DESIGN §2.3) and writes its Γ store into --out.

Each step k takes one calibration window: forward (and backward, unless --mode frozen),
local saliency S^k from the pre-update weights and the step's activation statistics,
normalised to mean 1 per matrix; AdamW on the target weights (reference, global);
z ← z + κ(S^k − Γ); the threshold τ (per-matrix λ-quantile in reference mode, ONE exact
model-wide λ-fraction threshold otherwise); Γ ← sign(z)·max(|z| − τ, 0).

The result does not depend on --shards, and a run interrupted and resumed (--resume) gives
bitwise the same Γ as an uninterrupted one. Masks for any sparsity then come from
'unipruning extract'.`,
		Example: `  unipruning search --model stories260K.bin --tokenizer tok512.bin --mode global \
      --calib TinyStories-train-head-944K.txt --calib-format lines --seqlen 256 --out runs/g`,
		RunE: func(cmd *cobra.Command, args []string) error {
			f.changed = cmd.Flags().Changed
			_, err := runSearch(cmd.Context(), f)
			return err
		},
	}
	f.register(cmd)
	markRequired(cmd, "out")
	return cmd
}

// prepareRunDir creates, reuses (resume) or replaces (force) a run directory.
func prepareRunDir(f *searchFlags) error {
	if f.out == "" {
		return missingFlag("out", "the run directory")
	}
	_, err := os.Stat(f.out)
	exists := err == nil
	switch {
	case f.resume && f.force:
		return conflictingFlags("resume", "force")
	case f.resume && !exists:
		return fmt.Errorf("--resume: run directory %s does not exist", f.out)
	case exists && !f.resume && !f.force:
		return fmt.Errorf("run directory %s exists (pass --resume to continue it or --force to start over)", f.out)
	case exists && f.force:
		if err := os.RemoveAll(f.out); err != nil {
			return err
		}
	}
	return os.MkdirAll(f.out, 0o755)
}

// runSearch validates, runs the search with in-process shards, and writes
// the Γ store. A fresh search that fails removes its run directory (so a
// rerun is not blocked); an interrupted one (ctx ended) keeps it for
// --resume.
func runSearch(ctx context.Context, f searchFlags) (*gammastore.Manifest, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	spec, err := searchSpec(&f)
	if err != nil {
		return nil, err
	}
	ck, err := model.Open(spec.Model, spec.Tokenizer)
	if err != nil {
		return nil, job.Invalid(err)
	}
	defer ck.Close()
	if spec, err = completeSpec(spec, ck.Config); err != nil {
		return nil, err
	}
	if err := checkInputs(spec); err != nil {
		return nil, err
	}
	if !f.dryRun { // before the lr probes, which run searches too
		if err := checkSearchFits(ck.Config, spec, f.shards); err != nil {
			return nil, err
		}
	}
	spec, choice, err := applyLRAuto(ctx, &f, spec)
	if err != nil {
		return nil, err
	}
	parts, err := coordinator.PlanSpec(ck.Config, f.shards, spec)
	if err != nil {
		return nil, err
	}
	plan := shard.PlanMemory(ck.Config, spec, parts, 0)
	if f.dryRun {
		return nil, printMemoryPlan(plan, f.json)
	}
	if err := prepareRunDir(&f); err != nil {
		return nil, err
	}
	if err := writeLRChoice(f.out, choice); err != nil {
		return nil, err
	}
	if afterRunDir != nil {
		afterRunDir(f.out)
	}
	man, err := searchInto(ctx, f, spec, ck, parts, plan)
	removeFailedRun(ctx, f, err)
	return man, err
}

// removeFailedRun removes the run directory of a fresh search that failed
// with err (so a rerun is not blocked); a resumed or interrupted one (ctx
// ended) keeps it for --resume.
func removeFailedRun(ctx context.Context, f searchFlags, err error) {
	if err != nil && !f.resume && ctx.Err() == nil {
		if rerr := os.RemoveAll(f.out); rerr == nil {
			logf("search failed; removed its run directory %s", f.out)
		}
	}
}

// afterRunDir, set by tests only, runs once the run directory exists (to
// inject a failure inside the run).
var afterRunDir func(dir string)

// searchSpec is the spec to run: the flags' for a new run; for --resume,
// the run's own (spec.json), which flags given on the command line must
// not contradict.
//
// --lr auto on resume means "the rate the run chose": no new probes (the
// run's spec holds the rate), and a run started with a fixed rate is not
// resumed under --lr auto given explicitly.
func searchSpec(f *searchFlags) (job.Spec, error) {
	spec := f.spec
	if f.resume {
		b, err := os.ReadFile(filepath.Join(f.out, "spec.json"))
		if err != nil {
			return spec, fmt.Errorf("--resume needs the run's %s/spec.json: %w", f.out, err)
		}
		var stored job.Spec
		if err := json.Unmarshal(b, &stored); err != nil {
			return spec, fmt.Errorf("%s/spec.json: %w", f.out, err)
		}
		given := f.spec
		if f.lrAuto {
			ch, err := readLRChoice(f.out)
			if err != nil {
				return spec, err
			}
			if ch == nil && (f.changed == nil || f.changed("lr")) {
				return spec, usageError{fmt.Errorf("--resume continues the run in %s, which ran at the fixed --lr %v, not --lr auto; "+
					"leave --lr out to resume it", f.out, stored.LR)}
			}
			given.LR, f.lrAuto = stored.LR, false
		}
		if diffs := specDiff(stored, given, f.changed); len(diffs) > 0 {
			return spec, usageError{fmt.Errorf("--resume continues the run in %s with its own settings, but %s; "+
				"leave those flags out to resume, or start a new run (another --out, or --force)", f.out, strings.Join(diffs, "; "))}
		}
		spec = stored
	}
	switch {
	case spec.Model == "":
		return spec, missingFlag("model", "the model to search (or --resume to continue a run)")
	case spec.CalibPath == "":
		return spec, missingFlag("calib", "the calibration text")
	}
	return spec, nil
}

// specFlags maps the search flags to the spec fields they set.
var specFlags = []struct {
	flag string
	get  func(*job.Spec) any
}{
	{"model", func(s *job.Spec) any { return s.Model }},
	{"tokenizer", func(s *job.Spec) any { return s.Tokenizer }},
	{"mode", func(s *job.Spec) any { return s.Mode }},
	{"metric", func(s *job.Spec) any { return s.Metric }},
	{"kappa", func(s *job.Spec) any { return s.Kappa }},
	{"lambda", func(s *job.Spec) any { return s.Lambda }},
	{"lr", func(s *job.Spec) any { return s.LR }},
	{"clip", func(s *job.Spec) any { return s.ClipNorm }},
	{"lambda2", func(s *job.Spec) any { return s.Lambda2 }},
	{"steps", func(s *job.Spec) any { return s.Steps }},
	{"seed", func(s *job.Spec) any { return s.Seed }},
	{"calib", func(s *job.Spec) any { return s.CalibPath }},
	{"calib-format", func(s *job.Spec) any { return s.CalibFormat }},
	{"seqlen", func(s *job.Spec) any { return s.Seqlen }},
	{"checkpoint-every", func(s *job.Spec) any { return s.CheckpointEvery }},
}

// specDiff lists the given flags whose values differ from the stored
// spec's ("--lr 0.01 differs from the run's 0.0001"). With changed nil,
// every flag counts as given unless its value is empty.
func specDiff(stored, given job.Spec, changed func(string) bool) []string {
	var out []string
	for _, sf := range specFlags {
		g, st := sf.get(&given), sf.get(&stored)
		if changed == nil {
			if reflect.ValueOf(g).IsZero() {
				continue
			}
		} else if !changed(sf.flag) {
			continue
		}
		if g != st {
			out = append(out, fmt.Sprintf("--%s %v differs from the run's %v", sf.flag, g, st))
		}
	}
	return out
}

// searchInto runs the search in the prepared run directory f.out.
func searchInto(ctx context.Context, f searchFlags, spec job.Spec, ck *model.Checkpoint, parts []nn.Part, plan shard.MemoryPlan) (*gammastore.Manifest, error) {
	start := time.Now()
	blobs, err := transport.NewFSBlobStore(filepath.Join(f.out, "checkpoints"))
	if err != nil {
		return nil, err
	}
	ledger, err := coordinator.OpenFileLedger(filepath.Join(f.out, "ledger.json"), spec.Hash())
	if err != nil {
		return nil, err
	}
	if err := writeJSONFile(filepath.Join(f.out, "spec.json"), spec); err != nil {
		return nil, err
	}
	shards, closeAll := localShards(parts, blobs)
	defer closeAll()
	var stepSeconds float64
	refs, resumed, err := driveSearch(ctx, spec, shards, ledger, func(s coordinator.StepInfo) { stepSeconds += s.Seconds })
	if err != nil {
		return nil, err
	}
	man, err := searchManifest(spec, ck, ledger.Steps(), resumed)
	if err != nil {
		return nil, err
	}
	man.Seconds = time.Since(start).Seconds()
	man.Resources = localResources(shards, plan, stepSeconds)
	if _, err := gammastore.Assemble(ctx, blobs, f.out, man, partRefs(refs, parts)); err != nil {
		return nil, err
	}
	if f.json {
		return man, printJSON(man)
	}
	logf("search done: Γ store in %s (%d steps, %.1fs)", f.out, spec.Steps, man.Seconds)
	return man, nil
}

// localShards builds in-process shards connected by channel pipes.
func localShards(parts []nn.Part, blobs shardrpc.BlobStore) ([]shardrpc.API, func()) {
	chain := shard.LocalChain(parts, blobs)
	apis := make([]shardrpc.API, len(chain))
	for i, l := range chain {
		apis[i] = l
	}
	return apis, func() {
		for _, l := range chain {
			l.Close()
		}
	}
}

// driveSearch runs the step loop with a progress bar and returns the Γ
// parts and the step the run resumed from.
func driveSearch(ctx context.Context, spec job.Spec, shards []shardrpc.API, ledger coordinator.Ledger, onStep func(coordinator.StepInfo)) ([]job.Ref, int, error) {
	bar := newProgress(spec.Steps, "search "+spec.Mode)
	show := stepPrinter(bar)
	d := &coordinator.Driver{Spec: spec, Shards: shards, Ledger: ledger, OnStep: func(s coordinator.StepInfo) { onStep(s); show(s) }}
	refs, err := d.Run(ctx)
	bar.Done()
	for _, note := range d.FellBack {
		logf("resume: %s; fell back to an older checkpoint", note)
	}
	if err != nil {
		return nil, 0, err
	}
	if d.Resumed > 0 {
		logf("resumed from the checkpoint of step %d", d.Resumed)
	}
	return refs, d.Resumed, nil
}

// stepPrinter reports search steps on a progress bar.
func stepPrinter(bar *progress) func(coordinator.StepInfo) {
	return func(s coordinator.StepInfo) {
		extra := fmt.Sprintf("loss %.4f", s.Loss)
		if !math.IsNaN(s.Tau) {
			extra += fmt.Sprintf(" τ %.4g", s.Tau)
		}
		if s.GradNorm > 0 {
			extra += fmt.Sprintf(" ‖g‖ %.3g", s.GradNorm)
		}
		bar.Set(s.Step, extra)
	}
}
