package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

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
	return os.WriteFile(path, append(b, '\n'), 0o644)
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
