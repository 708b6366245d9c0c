package report

import (
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Cell is one (label, target) measurement: the pruned model's perplexity
// and the report it comes from.
type Cell struct {
	PPL    float64
	Report *Report
	Path   string
	// PPLs holds one perplexity per root, in root order (NaN where a
	// root lacks the cell), when several roots were collected
	// (CollectAll); PPL is then the mean of the present ones.
	PPLs []float64
}

// Skipped is a report.json that Collect did not put in the table, and why.
type Skipped struct {
	Path   string
	Reason string
}

// Results are the pruned perplexities found under a directory tree.
type Results struct {
	// Cells maps a label (the output directory, relative to the root)
	// and a target (sparsity-0.50, pattern-2of4) to its measurement.
	Cells map[string]map[string]Cell
	// Dense is the dense model's perplexity, when a report has it.
	Dense   float64
	Skipped []Skipped
	// Roots is how many roots CollectAll merged (0 or 1: one).
	Roots int
}

// Collect finds every report.json under root, however deep: the layouts of
// prune and extract (<label>/<target>/report.json, or <label>/report.json
// for a single prune output) and of run (<label>/pruned/<target>/). The
// label is the output directory relative to root, without the target
// directory and run's "pruned" level (root's own name when nothing is
// left); the target comes from the directory name when it is one,
// otherwise from the report. Reports without a pruned perplexity, and a
// second report for a (label, target) already taken, are listed in
// Skipped with the reason.
func Collect(root string) (*Results, error) {
	if root == "" {
		return nil, fmt.Errorf("no root directory given")
	}
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir // an output still being written (.name.tmp-*)
		}
		if !d.IsDir() && d.Name() == "report.json" {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no report.json under %s", root)
	}
	sort.Strings(paths)
	r := &Results{Cells: map[string]map[string]Cell{}}
	for _, p := range paths {
		if err := r.add(root, p); err != nil {
			return nil, err
		}
	}
	if len(r.Cells) == 0 {
		return r, fmt.Errorf("no report under %s has a pruned model's perplexity (give prune, extract or run --eval-text)", root)
	}
	return r, nil
}

// CollectAll collects several roots — the same experiment repeated, e.g.
// one per calibration seed — into one table: a cell's PPL is the mean of
// the roots' perplexities, listed in PPLs in root order. A single root is
// Collect.
func CollectAll(roots []string) (*Results, error) {
	if len(roots) == 1 {
		return Collect(roots[0])
	}
	if len(roots) == 0 {
		return nil, fmt.Errorf("no root directory given")
	}
	all := &Results{Cells: map[string]map[string]Cell{}, Roots: len(roots)}
	for i, root := range roots {
		r, err := Collect(root)
		if r != nil {
			all.Skipped = append(all.Skipped, r.Skipped...)
		}
		if err != nil {
			return all, err
		}
		if r.Dense > 0 {
			all.Dense = r.Dense
		}
		for label, row := range r.Cells {
			if all.Cells[label] == nil {
				all.Cells[label] = map[string]Cell{}
			}
			for t, c := range row {
				m := all.Cells[label][t]
				if m.Report == nil {
					m = c
					m.PPLs = make([]float64, len(roots))
					for j := range m.PPLs {
						m.PPLs[j] = math.NaN()
					}
				}
				m.PPLs[i] = c.PPL
				all.Cells[label][t] = m
			}
		}
	}
	for _, row := range all.Cells {
		for t, c := range row {
			c.PPL = mean(c.PPLs)
			row[t] = c
		}
	}
	return all, nil
}

// present drops the NaNs (roots without the cell).
func present(xs []float64) []float64 {
	var out []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			out = append(out, x)
		}
	}
	return out
}

func mean(xs []float64) float64 {
	xs = present(xs)
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// stddev is the sample standard deviation (n−1) of the present values, 0
// for fewer than two.
func stddev(xs []float64) float64 {
	xs = present(xs)
	if len(xs) < 2 {
		return 0
	}
	m, s := mean(xs), 0.0
	for _, x := range xs {
		s += (x - m) * (x - m)
	}
	return math.Sqrt(s / float64(len(xs)-1))
}

// add files one report.
func (r *Results) add(root, path string) error {
	rep, err := Read(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	pruned := -1.0
	for _, e := range rep.Evals {
		switch e.Model {
		case "pruned":
			pruned = e.PPL
		case "dense":
			r.Dense = e.PPL
		}
	}
	label, target := placeOf(root, path, rep)
	switch {
	case pruned < 0:
		r.skip(path, "no perplexity of the pruned model (it was written without --eval-text)")
	case target == "":
		r.skip(path, "the report names neither a sparsity nor a pattern")
	case r.Cells[label][target].Report != nil:
		r.skip(path, fmt.Sprintf("row %q, column %s is taken by %s", label, target, r.Cells[label][target].Path))
	default:
		if r.Cells[label] == nil {
			r.Cells[label] = map[string]Cell{}
		}
		r.Cells[label][target] = Cell{PPL: pruned, Report: rep, Path: path}
	}
	return nil
}

func (r *Results) skip(path, reason string) {
	r.Skipped = append(r.Skipped, Skipped{Path: path, Reason: reason})
}

// placeOf names the row and column of the report at path under root.
func placeOf(root, path string, rep *Report) (label, target string) {
	rel, err := filepath.Rel(root, filepath.Dir(path))
	if err != nil || rel == "." {
		rel = ""
	}
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if rel == "" {
		parts = nil
	}
	if n := len(parts); n > 0 && isTarget(parts[n-1]) {
		target, parts = parts[n-1], parts[:n-1]
	} else {
		target = TargetName(rep)
	}
	if n := len(parts); n > 0 && parts[n-1] == "pruned" { // run's <out>/pruned/<target>
		parts = parts[:n-1]
	}
	label = strings.Join(parts, "/")
	if label == "" {
		label = filepath.Base(filepath.Clean(root))
	}
	return label, target
}

func isTarget(dir string) bool {
	return strings.HasPrefix(dir, "sparsity-") || strings.HasPrefix(dir, "pattern-")
}

// TargetName is the target of a report as output directories name it:
// sparsity-0.50 or pattern-2of4 ("" when the report has neither).
func TargetName(rep *Report) string {
	if n, m, ok := strings.Cut(rep.Pattern, ":"); ok {
		return "pattern-" + n + "of" + m
	}
	if rep.Sparsity != nil {
		return fmt.Sprintf("sparsity-%.2f", *rep.Sparsity)
	}
	return ""
}

// Targets lists the columns: sparsities ascending, then patterns.
func (r *Results) Targets() []string {
	set := map[string]bool{}
	for _, row := range r.Cells {
		for t := range row {
			set[t] = true
		}
	}
	var cols []string
	for t := range set {
		cols = append(cols, t)
	}
	sort.Slice(cols, func(i, j int) bool {
		pi, pj := strings.HasPrefix(cols[i], "pattern"), strings.HasPrefix(cols[j], "pattern")
		if pi != pj {
			return !pi
		}
		return cols[i] < cols[j]
	})
	return cols
}

// Labels lists the rows: those in order first (when present), the others
// alphabetically.
func (r *Results) Labels(order []string) []string {
	var rows []string
	seen := map[string]bool{}
	for _, o := range order {
		if _, ok := r.Cells[o]; ok && !seen[o] {
			rows, seen[o] = append(rows, o), true
		}
	}
	var rest []string
	for l := range r.Cells {
		if !seen[l] {
			rest = append(rest, l)
		}
	}
	sort.Strings(rest)
	return append(rows, rest...)
}

// ColumnName is a target's table heading: 50% or 2:4.
func ColumnName(t string) string {
	if s, ok := strings.CutPrefix(t, "sparsity-"); ok {
		if v, err := strconv.ParseFloat(s, 64); err == nil {
			return strconv.FormatFloat(100*v, 'f', -1, 64) + "%"
		}
		return s
	}
	return strings.Replace(strings.TrimPrefix(t, "pattern-"), "of", ":", 1)
}

// WriteMarkdown writes the table: a row per label (in order), a column per
// target, the dense perplexity first, the best (mean) of each column in
// bold. Merged roots show mean ± sample standard deviation. A cell whose
// report counts its weights shows the achieved total sparsity in
// parentheses, marked † when it falls short of the column's label (an N:M
// pattern leaves matrices whose width is not a multiple of M dense).
func (r *Results) WriteMarkdown(w io.Writer, order []string, title string) {
	cols := r.Targets()
	if title != "" {
		fmt.Fprintf(w, "%s\n\n", title)
	}
	fmt.Fprintf(w, "| method |")
	for _, c := range cols {
		fmt.Fprintf(w, " %s |", ColumnName(c))
	}
	fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("---:|", len(cols)))
	fmt.Fprintf(w, "| dense | %.3f |%s\n", r.Dense, strings.Repeat(" |", len(cols)-1))
	best := map[string]float64{}
	for _, row := range r.Cells {
		for c, cell := range row {
			if b, ok := best[c]; !ok || cell.PPL < b {
				best[c] = cell.PPL
			}
		}
	}
	short := false
	for _, row := range r.Labels(order) {
		fmt.Fprintf(w, "| %s |", row)
		for _, c := range cols {
			cell, ok := r.Cells[row][c]
			if !ok {
				fmt.Fprintf(w, " – |")
				continue
			}
			v := fmt.Sprintf("%.3f", cell.PPL)
			if cell.PPL == best[c] {
				v = "**" + v + "**"
			}
			n := len(present(cell.PPLs))
			if n > 1 || (r.Roots > 1 && n == 1) {
				v += fmt.Sprintf(" ± %.3f", stddev(cell.PPLs))
			}
			if r.Roots > 1 && n < r.Roots {
				v += fmt.Sprintf(" (%d of %d runs)", n, r.Roots)
			}
			if a, ok := achieved(cell.Report); ok {
				mark := ""
				if label, ok := LabelSparsity(c); ok && a < label-1e-3 {
					mark, short = "†", true
				}
				v += fmt.Sprintf(" (%.1f%%%s)", 100*a, mark)
			}
			fmt.Fprintf(w, " %s |", v)
		}
		fmt.Fprintln(w)
	}
	if r.Roots > 1 {
		fmt.Fprintf(w, "\nMean ± sample standard deviation over %d runs.", r.Roots)
	}
	fmt.Fprintf(w, "\nIn parentheses: the achieved share of pruned target weights.")
	if short {
		fmt.Fprintf(w, " † below the column's label: matrices whose input width is not a multiple of M stay dense under N:M (each report lists them).")
	}
	fmt.Fprintln(w)
}

// WriteWins writes, for each label of labels, in how many runs (roots) it
// beats every row of against in each column — strictly lower perplexity
// than the best of them in that same run — and by how much at the worst
// run (its perplexity over the best baseline's, minus one: negative is a
// win). A run counts only when the label and every row of against have
// the cell in it.
func (r *Results) WriteWins(w io.Writer, labels, against []string) {
	cols := r.Targets()
	runs := max(1, r.Roots)
	fmt.Fprintf(w, "| beats %s in every run? |", strings.Join(against, ", "))
	for _, c := range cols {
		fmt.Fprintf(w, " %s |", ColumnName(c))
	}
	fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("---:|", len(cols)))
	for _, l := range labels {
		fmt.Fprintf(w, "| %s |", l)
		for _, c := range cols {
			wins, counted, worst := 0, 0, math.Inf(-1)
			for i := range runs {
				mine := r.runPPL(l, c, i)
				best := math.Inf(1)
				for _, a := range against {
					v := r.runPPL(a, c, i)
					if math.IsNaN(v) { // a run counts only with every row present
						best = math.NaN()
						break
					}
					best = min(best, v)
				}
				if math.IsNaN(mine) || math.IsNaN(best) || math.IsInf(best, 1) {
					continue
				}
				counted++
				if mine < best {
					wins++
				}
				worst = max(worst, mine/best-1)
			}
			if counted == 0 {
				fmt.Fprintf(w, " – |")
				continue
			}
			mark := "yes"
			if wins < counted {
				mark = "**no**"
			}
			fmt.Fprintf(w, " %s %d/%d (worst %+.1f%%) |", mark, wins, counted, 100*worst)
		}
		fmt.Fprintln(w)
	}
}

// runPPL is a cell's perplexity in run i (NaN when absent).
func (r *Results) runPPL(label, target string, i int) float64 {
	c, ok := r.Cells[label][target]
	switch {
	case !ok:
		return math.NaN()
	case c.PPLs == nil:
		if i == 0 {
			return c.PPL
		}
		return math.NaN()
	case i < len(c.PPLs):
		return c.PPLs[i]
	}
	return math.NaN()
}

// achieved is the total sparsity a report achieved, when it counts weights.
func achieved(rep *Report) (float64, bool) {
	if rep == nil || rep.Targets == 0 {
		return 0, false
	}
	return rep.Total, true
}

// LabelSparsity is the sparsity a column promises: p for sparsity-p,
// 1 − N/M for pattern-NofM.
func LabelSparsity(target string) (float64, bool) {
	if s, ok := strings.CutPrefix(target, "sparsity-"); ok {
		v, err := strconv.ParseFloat(s, 64)
		return v, err == nil
	}
	if s, ok := strings.CutPrefix(target, "pattern-"); ok {
		n, m, ok := strings.Cut(s, "of")
		if !ok {
			return 0, false
		}
		nv, err1 := strconv.Atoi(n)
		mv, err2 := strconv.Atoi(m)
		if err1 != nil || err2 != nil || mv <= 0 {
			return 0, false
		}
		return 1 - float64(nv)/float64(mv), true
	}
	return 0, false
}

// DrawCharts writes into dir: perplexity against sparsity
// (ppl-vs-sparsity.png), perplexity of every N:M pattern (ppl-nm.png,
// when there is one) and the per-matrix sparsity of every
// global-allocation output (matrix-sparsity-<label>-<target>.png).
func (r *Results) DrawCharts(dir string, order []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var unstructured, nm []Series
	for _, label := range r.Labels(order) {
		s := Series{Name: label, Points: map[float64]float64{}}
		p := Series{Name: label, Patterns: map[string]float64{}}
		for _, t := range sortedKeys(r.Cells[label]) {
			cell := r.Cells[label][t]
			switch {
			case cell.Report.Pattern != "":
				p.Patterns[cell.Report.Pattern] = cell.PPL
			case cell.Report.Sparsity != nil:
				s.Points[*cell.Report.Sparsity] = cell.PPL
			}
			if cell.Report.Allocation == "global" {
				name := filepath.Join(dir, fmt.Sprintf("matrix-sparsity-%s-%s.png", strings.ReplaceAll(label, "/", "_"), t))
				if err := PlotMatrixSparsity(cell.Report, fmt.Sprintf("%s, %s: per-matrix sparsity (global allocation)", label, t), name); err != nil {
					return err
				}
			}
		}
		if len(s.Points) > 0 {
			unstructured = append(unstructured, s)
		}
		if len(p.Patterns) > 0 {
			nm = append(nm, p)
		}
	}
	if len(unstructured) > 0 {
		if err := PlotPPLvsSparsity(unstructured, r.Dense, "perplexity against sparsity", filepath.Join(dir, "ppl-vs-sparsity.png")); err != nil {
			return err
		}
	}
	if len(nm) > 0 {
		return PlotPPLPatterns(nm, r.Dense, "perplexity of N:M patterns", filepath.Join(dir, "ppl-nm.png"))
	}
	return nil
}

func sortedKeys(m map[string]Cell) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
