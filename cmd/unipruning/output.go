package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/unipruning/unipruning/internal/atomicfile"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/prune/extract"
	"github.com/unipruning/unipruning/prune/maskfile"
	"github.com/unipruning/unipruning/report"
)

// printJSON writes v as one JSON object on stdout.
func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o644)
}

// writeOutput saves the pruned checkpoint, filling each target tensor with
// fill (false leaves a tensor as the input has it), then the mask sidecar, and
// evaluates the result when asked. prune and extract share it so that their
// outputs cannot drift apart. An HF output carries the compressed-tensors
// sparsity metadata in config.json and, with compress, stores the sparse
// weights in that library's compressed format.
func writeOutput(dir string, m *loaded, fill func(name string, data []float32) (bool, error), masks *maskfile.Writer, rep *report.Report, ev *evalSpec, seqlen int, compress bool) error {
	t0 := time.Now()
	opt := model.SaveOptions{Compress: compress}
	if rep.Pattern != "" {
		var err error
		if opt.N, opt.M, err = parsePattern("pattern", rep.Pattern); err != nil {
			return err
		}
	}
	st, err := model.SaveLike(m.ck, dir, fill, opt)
	if err != nil {
		return err
	}
	rep.Storage = st
	if err := masks.Write(filepath.Join(dir, "masks.safetensors")); err != nil {
		return err
	}
	rep.Seconds["write"] = time.Since(t0).Seconds()
	if err := plotSparsity(dir, rep); err != nil {
		return err
	}
	return evalOutput(dir, m, rep, ev, seqlen)
}

const saveCompressedHelp = "store the pruned weights in compressed-tensors' sparse format (sparse-24-bitmask for 2:4, sparse-bitmask otherwise; HF models only); eval --model reads it back"

// checkCompressible refuses --save-compressed for a model it cannot apply
// to, before any work is done.
func checkCompressible(ck *model.Checkpoint, compress bool) error {
	if compress && ck.Format != model.FormatHF {
		return badFlag("save-compressed", true, "needs a Hugging Face model directory (%s is a llama2.c model)", ck.Path)
	}
	return nil
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

// maskedFill applies the extracted masks to the ORIGINAL weights as they are
// read from the input checkpoint.
func maskedFill(byName map[string]extract.Result) func(string, []float32) (bool, error) {
	return func(name string, data []float32) (bool, error) {
		r, ok := byName[name]
		if !ok {
			return false, nil
		}
		r.Mask.Apply(data)
		return true, nil
	}
}

// evalOutput reloads a written output and evaluates it as asked.
func evalOutput(dir string, m *loaded, rep *report.Report, ev *evalSpec, seqlen int) error {
	if !ev.any() {
		return nil
	}
	out, err := openModel(filepath.Join(dir, outputModelName(m.ck)), "", false)
	if err != nil {
		return fmt.Errorf("reloading the pruned output: %w", err)
	}
	defer out.ck.Close()
	return ev.score("pruned", out, m.ck.TokenizerPath, seqlen, rep)
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
	if st := rep.Storage; st != nil {
		fmt.Printf("weights: %s stored %s (%s) vs %s dense, %.1f%%; global sparsity %.4f\n", filepath.Base(out),
			mib(st.StoredBytes), st.Format, mib(st.DenseBytes), 100*st.Ratio(), st.GlobalSparsity)
	}
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

func mib(b int64) string { return fmt.Sprintf("%.2f MiB", float64(b)/(1<<20)) }
