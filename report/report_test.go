package report

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// write puts a report with a pruned (and dense) perplexity at dir.
func write(t *testing.T, dir string, sparsity float64, pattern string, ppl float64) {
	t.Helper()
	r := &Report{Method: "m", Evals: []Eval{{Model: "dense", PPL: 5}, {Model: "pruned", PPL: ppl}}}
	if pattern != "" {
		r.Pattern = pattern
	} else {
		r.Sparsity = &sparsity
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := r.Write(filepath.Join(dir, "report.json")); err != nil {
		t.Fatal(err)
	}
}

// TestCollectLayouts: the output layouts of prune (<label>/<target>/ and a
// single <label>/), extract and run (<label>/pruned/<target>/) all land in
// the table under their directory's name; a report without a pruned
// perplexity and a second report for a taken cell are skipped with the
// reason, not silently.
func TestCollectLayouts(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "wanda", "sparsity-0.50"), 0.5, "", 9)
	write(t, filepath.Join(root, "wanda", "pattern-2of4"), 0, "2:4", 12)
	write(t, filepath.Join(root, "sgpt-24"), 0, "2:4", 11)
	write(t, filepath.Join(root, "demo", "pruned", "sparsity-0.60"), 0.6, "", 10)
	write(t, filepath.Join(root, "demo", "pruned", "pattern-2of4"), 0, "2:4", 13)
	write(t, filepath.Join(root, "deep", "a", "sparsity-0.50"), 0.5, "", 8)
	write(t, filepath.Join(root, "sgpt-24", "pattern-2of4"), 0, "2:4", 14)       // the same cell again (first in path order, so it wins)
	write(t, filepath.Join(root, ".wanda.tmp-123", "sparsity-0.50"), 0.5, "", 1) // being written: ignored
	noEval := &Report{Sparsity: new(float64)}
	os.MkdirAll(filepath.Join(root, "bare"), 0o755)
	noEval.Write(filepath.Join(root, "bare", "report.json"))

	r, err := Collect(root)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]float64{
		"wanda":   {"sparsity-0.50": 9, "pattern-2of4": 12},
		"sgpt-24": {"pattern-2of4": 14},
		"demo":    {"sparsity-0.60": 10, "pattern-2of4": 13},
		"deep/a":  {"sparsity-0.50": 8},
	}
	if len(r.Cells) != len(want) {
		t.Fatalf("rows %v, want %v", r.Labels(nil), want)
	}
	for label, cols := range want {
		for target, ppl := range cols {
			if c := r.Cells[label][target]; c.PPL != ppl {
				t.Errorf("%s/%s = %v, want %v", label, target, c.PPL, ppl)
			}
		}
	}
	if len(r.Skipped) != 2 {
		t.Fatalf("skipped %+v, want the bare report and the second sgpt-24 2:4", r.Skipped)
	}
	for _, s := range r.Skipped {
		switch {
		case strings.Contains(s.Path, "bare") && strings.Contains(s.Reason, "without --eval-text"):
		case s.Path == filepath.Join(root, "sgpt-24", "report.json") && strings.Contains(s.Reason, "is taken by"):
		default:
			t.Errorf("unexpected skip %+v", s)
		}
	}
	var md bytes.Buffer
	r.WriteMarkdown(&md, []string{"wanda"}, "")
	lines := strings.Split(md.String(), "\n")
	if lines[0] != "| method | 50% | 60% | 2:4 |" || !strings.HasPrefix(lines[3], "| wanda |") || !strings.Contains(md.String(), "| demo | – | **10.000** | 13.000 |") {
		t.Fatalf("table:\n%s", md.String())
	}
	// A root that is itself one output directory is labelled by its name.
	one, err := Collect(filepath.Join(root, "demo"))
	if err != nil || one.Cells["demo"]["sparsity-0.60"].PPL != 10 {
		t.Fatalf("root = the run's own directory: %+v %v", one, err)
	}
}

// TestCharts: the perplexity axis ends on a labelled tick at or above the
// highest point (and starts on one at or below the lowest), N:M results get
// their own chart, and the per-matrix sparsity axis is [0, 1].
func TestCharts(t *testing.T) {
	for _, c := range [][2]float64{{5.4, 23.7}, {1.3, 9.99}, {20, 200}, {3, 3}, {0.8, 1.05}} {
		lo, hi := logAxis(c[0], c[1])
		if lo > c[0] || hi < c[1] {
			t.Errorf("axis [%v, %v] does not cover [%v, %v]", lo, hi, c[0], c[1])
		}
		ticks := logTicks{}.Ticks(lo, hi)
		if len(ticks) == 0 || ticks[len(ticks)-1].Value < c[1] || ticks[0].Value > c[0] {
			t.Errorf("ticks %v do not bracket [%v, %v]", ticks, c[0], c[1])
		}
		if hi > 2.5*c[1] {
			t.Errorf("axis top %v wastes the range above %v", hi, c[1])
		}
	}
	series := []Series{{Name: "a", Points: map[float64]float64{0.5: 6, 0.8: 57.3}}, {Name: "b", Points: map[float64]float64{0.5: 7}}}
	p, err := pplPlot(series, 5.2, "t")
	if err != nil {
		t.Fatal(err)
	}
	if p.Y.Max < 57.3 || p.Y.Min > 5.2 {
		t.Fatalf("ppl axis [%v, %v]", p.Y.Min, p.Y.Max)
	}

	r := &Report{Total: 0.5}
	for i := 0; i < 14; i++ {
		r.Matrices = append(r.Matrices, Matrix{Name: "model.layers.0.self_attn.q_proj.weight", Sparsity: math.Mod(float64(i)/7, 1)})
	}
	sp, err := matrixSparsityPlot(r, "t")
	if err != nil {
		t.Fatal(err)
	}
	if sp.Y.Min != 0 || sp.Y.Max != 1 {
		t.Fatalf("sparsity axis [%v, %v], want [0, 1]", sp.Y.Min, sp.Y.Max)
	}

	root := t.TempDir()
	write(t, filepath.Join(root, "wanda", "sparsity-0.50"), 0.5, "", 9)
	write(t, filepath.Join(root, "wanda", "pattern-2of4"), 0, "2:4", 12)
	write(t, filepath.Join(root, "wanda", "pattern-4of8"), 0, "4:8", 11)
	res, err := Collect(root)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := res.DrawCharts(dir, nil); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ppl-vs-sparsity.png", "ppl-nm.png"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s not drawn: %v", f, err)
		}
	}
	pp, err := patternsPlot([]Series{{Name: "wanda", Patterns: map[string]float64{"2:4": 12, "4:8": 11}}}, 5, "t")
	if err != nil {
		t.Fatal(err)
	}
	if pp.X.Min != -0.5 || pp.X.Max != 1.5 || pp.Y.Max < 12 {
		t.Fatalf("N:M chart axes x [%v, %v], y max %v", pp.X.Min, pp.X.Max, pp.Y.Max)
	}
}

// TestTableSeedsAndAchievedSparsity: several roots (one per calibration
// seed) merge into mean ± sample sd; every cell whose report counts
// weights shows its achieved sparsity, and a 4:8 cell that leaves a
// matrix dense is marked as short of its label.
func TestTableSeedsAndAchievedSparsity(t *testing.T) {
	counted := func(dir string, sp float64, pattern string, ppl float64, mats []Matrix) {
		t.Helper()
		write(t, dir, sp, pattern, ppl)
		r, err := Read(filepath.Join(dir, "report.json"))
		if err != nil {
			t.Fatal(err)
		}
		r.Matrices = mats
		r.Summarize()
		if err := r.Write(filepath.Join(dir, "report.json")); err != nil {
			t.Fatal(err)
		}
	}
	half := []Matrix{{Name: "a", Out: 4, In: 8, Kept: 16}, {Name: "b", Out: 4, In: 8, Kept: 16}}
	oneDense := []Matrix{{Name: "a", Out: 4, In: 8, Kept: 16}, {Name: "b", Out: 4, In: 6, Kept: 24, Dense: true}}
	var roots []string
	for seed, ppl := range []float64{10, 12, 14} {
		root := filepath.Join(t.TempDir(), "seed")
		roots = append(roots, root)
		counted(filepath.Join(root, "x", "sparsity-0.50"), 0.5, "", ppl, half)
		counted(filepath.Join(root, "x", "pattern-4of8"), 0, "4:8", ppl+1, oneDense)
		if seed < 2 {
			counted(filepath.Join(root, "y", "sparsity-0.50"), 0.5, "", 20, half)
		}
	}
	r, err := CollectAll(roots)
	if err != nil {
		t.Fatal(err)
	}
	if c := r.Cells["x"]["sparsity-0.50"]; c.PPL != 12 || len(c.PPLs) != 3 {
		t.Fatalf("mean cell %+v", c)
	}
	var md bytes.Buffer
	r.WriteMarkdown(&md, nil, "")
	s := md.String()
	for _, want := range []string{
		"| x | **12.000** ± 2.000 (50.0%) | **13.000** ± 2.000 (28.6%†) |",
		"| y | 20.000 ± 0.000 (2 of 3 runs) (50.0%) | – |",
		"over 3 runs", "† below the column's label",
	} {
		if !strings.Contains(s, want) {
			t.Fatalf("table lacks %q:\n%s", want, s)
		}
	}
	var wins bytes.Buffer
	r.WriteWins(&wins, []string{"x"}, []string{"y"})
	if !strings.Contains(wins.String(), "| x | yes 2/2 (worst -40.0%) | – |") {
		t.Fatalf("wins:\n%s", wins.String())
	}
	wins.Reset()
	r.WriteWins(&wins, []string{"y"}, []string{"x"})
	if !strings.Contains(wins.String(), "| y | **no** 0/2 (worst +100.0%) | – |") {
		t.Fatalf("wins:\n%s", wins.String())
	}
	if v, ok := LabelSparsity("pattern-4of8"); !ok || v != 0.5 {
		t.Fatalf("LabelSparsity(4:8) = %v %v", v, ok)
	}
}
