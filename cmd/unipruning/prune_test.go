package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipruning/unipruning/internal/shareddata"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/prune"
	"github.com/unipruning/unipruning/prune/maskfile"
	"github.com/unipruning/unipruning/report"
)

func ptr[T any](v T) *T { return &v }

func storiesPrune(t *testing.T, method string) pruneFlags {
	return pruneFlags{
		model:     shareddata.Path(t, "models/stories260K/stories260K.bin"),
		tokenizer: shareddata.Path(t, "models/stories260K/tok512.bin"),
		calib:     shareddata.Path(t, "text/tinystories/TinyStories-train-head-944K.txt"),
		method:    method, calibFormat: "lines", nsamples: 8, seqlen: 64, batch: 4,
		out: filepath.Join(t.TempDir(), "out"),
	}
}

// TestPruneBadInput: every bad input is refused with a clear error before
// anything is written.
func TestPruneBadInput(t *testing.T) {
	cases := []struct {
		edit func(f *pruneFlags)
		want string
	}{
		{func(f *pruneFlags) { f.sparsity = ptr(1.2) }, "outside [0, 1)"},
		{func(f *pruneFlags) { f.sparsity = ptr(-0.5); f.pattern = "" }, "--sparsity -0.5: outside [0, 1)"},
		{func(f *pruneFlags) { f.sparsity = ptr(-0.5); f.pattern = "2:4" }, "not both"},
		{func(f *pruneFlags) {}, "--sparsity is required: give --sparsity P (unstructured) or --pattern N:M"},
		{func(f *pruneFlags) { f.sparsity = ptr(0.5); f.method = "" }, "--method is required: magnitude, wanda, ria or sparsegpt"},
		{func(f *pruneFlags) { f.sparsity = ptr(0.5); f.seqlen = -3 }, "--seqlen -3: must be positive"},
		{func(f *pruneFlags) { f.pattern = "4:4" }, "1 ≤ N < M"},
		{func(f *pruneFlags) { f.pattern = "2-4" }, "want N:M"},
		{func(f *pruneFlags) { f.pattern = "2:4"; f.sparsity = ptr(0.5) }, "not both"},
		{func(f *pruneFlags) { f.method = "obs"; f.sparsity = ptr(0.5) }, "unknown method"},
		{func(f *pruneFlags) { f.sparsity = ptr(0.5); f.seqlen = 4096 }, "exceeds the model's context"},
		{func(f *pruneFlags) { f.sparsity = ptr(0.5); f.byRow, f.byMatrix = true, true }, "exclude each other"},
		{func(f *pruneFlags) { f.sparsity = ptr(0.5); f.calib = "/nonexistent/calib.txt" }, "no such file"},
		{func(f *pruneFlags) { f.sparsity = ptr(0.5); f.calibFormat = "parquet" }, "unknown calibration format"},
		{func(f *pruneFlags) {
			f.sparsity = ptr(0.5)
			f.evals.texts = []string{"/nonexistent"}
			f.evals.datasets = []string{"lines"}
		}, "--eval-text"},
	}
	for _, c := range cases {
		f := storiesPrune(t, "wanda")
		c.edit(&f)
		err := runPrune(f)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want an error containing %q", err, c.want)
		}
		if _, serr := os.Stat(f.out); serr == nil {
			t.Errorf("a failed run (%v) left %s behind", err, f.out)
		}
	}
	// A calibration text shorter than one window.
	short := filepath.Join(t.TempDir(), "short.txt")
	os.WriteFile(short, []byte("Once upon a time.\n"), 0o644)
	f := storiesPrune(t, "wanda")
	f.sparsity, f.calib = ptr(0.5), short
	if err := runPrune(f); err == nil || !strings.Contains(err.Error(), "too short") {
		t.Errorf("short calibration: %v", err)
	}
	// An existing output directory is refused unless --force.
	f = storiesPrune(t, "magnitude")
	f.sparsity = ptr(0.5)
	os.MkdirAll(f.out, 0o755)
	if err := runPrune(f); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("existing output: %v", err)
	}
	f.force = true
	if err := runPrune(f); err != nil {
		t.Errorf("--force: %v", err)
	}
}

// TestPruneOutputs checks every method end to end: exact sparsity, masks
// that match the written weights, untouched non-target tensors, and the
// N:M groups (4:8 leaves the 172-wide down projections dense).
func TestPruneOutputs(t *testing.T) {
	for _, method := range []string{"magnitude", "wanda", "ria", "sparsegpt"} {
		for _, target := range []string{"0.6", "2:4", "4:8"} {
			f := storiesPrune(t, method)
			if strings.Contains(target, ":") {
				f.pattern = target
			} else {
				f.sparsity = ptr(0.6)
			}
			if err := runPrune(f); err != nil {
				t.Fatalf("%s %s: %v", method, target, err)
			}
			checkPruned(t, f, method, target)
		}
	}
}

func checkPruned(t *testing.T, f pruneFlags, method, target string) {
	t.Helper()
	rep, err := report.Read(filepath.Join(f.out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	masks, err := maskfile.Read(filepath.Join(f.out, "masks.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := model.Open(f.model, "")
	defer orig.Close()
	out, err := model.Open(filepath.Join(f.out, "stories260K.bin"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	for _, m := range rep.Matrices {
		mask := masks[m.Name]
		w, _ := out.Read(m.Name)
		w0, _ := orig.Read(m.Name)
		for i := range w {
			keep := mask.Keep(i/m.In, i%m.In)
			if !keep && w[i] != 0 {
				t.Fatalf("%s %s %s: pruned weight %d is %v", method, target, m.Name, i, w[i])
			}
			if keep && method != "sparsegpt" && w[i] != w0[i] {
				t.Fatalf("%s %s %s: kept weight %d changed", method, target, m.Name, i)
			}
		}
		checkCounts(t, method, target, m, mask.Kept())
	}
	for _, name := range []string{model.EmbedName, model.NormName, model.AttnNormName(2)} {
		a, _ := out.Read(name)
		b, _ := orig.Read(name)
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s: non-target tensor %s changed", method, name)
			}
		}
	}
}

func checkCounts(t *testing.T, method, target string, m report.Matrix, kept int) {
	t.Helper()
	n := m.Out * m.In
	switch target {
	case "0.6":
		// Every method, Wanda's per-row one too, prunes the same count.
		want := n - prune.PruneCount(n, 0.6)
		if kept != want {
			t.Fatalf("%s: %s kept %d of %d at 60%%, want exactly %d", method, m.Name, kept, n, want)
		}
	case "2:4":
		if kept != n/2 {
			t.Fatalf("%s: %s kept %d of %d under 2:4", method, m.Name, kept, n)
		}
	case "4:8":
		if m.In%8 != 0 {
			if !m.Dense || kept != n || !strings.Contains(m.Reason, "not a multiple of 8") {
				t.Fatalf("%s: %s (in=%d) should stay dense and be reported", method, m.Name, m.In)
			}
		} else if kept != n/2 {
			t.Fatalf("%s: %s kept %d of %d under 4:8", method, m.Name, kept, n)
		}
	}
}

// TestPruneReportZeroShot: with --tasks the report carries the zero-shot
// table of the dense and the pruned model.
func TestPruneReportZeroShot(t *testing.T) {
	f := storiesPrune(t, "magnitude")
	f.sparsity = ptr(0.5)
	f.evals.tasks.list = "arc_easy,winogrande"
	f.evals.tasks.limit = 6
	f.evals.tasks.dir = filepath.Dir(filepath.Dir(shareddata.Path(t, "tasks/arc_easy/arc_easy.jsonl")))
	if err := runPrune(f); err != nil {
		t.Fatal(err)
	}
	rep, err := report.Read(filepath.Join(f.out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, label := range []string{"dense", "pruned"} {
		zs := rep.ZeroShot[label]
		if zs == nil || len(zs.Tasks) != 2 || zs.Tasks[0].N != 6 {
			t.Fatalf("%s zero-shot report missing or wrong: %+v", label, zs)
		}
	}
}
