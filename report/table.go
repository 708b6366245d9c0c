package report

import (
	"fmt"
	"io"
	"io/fs"
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
// target, the dense perplexity first, the best of each column in bold.
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
	for _, row := range r.Labels(order) {
		fmt.Fprintf(w, "| %s |", row)
		for _, c := range cols {
			if cell, ok := r.Cells[row][c]; ok && cell.PPL == best[c] {
				fmt.Fprintf(w, " **%.3f** |", cell.PPL)
			} else if ok {
				fmt.Fprintf(w, " %.3f |", cell.PPL)
			} else {
				fmt.Fprintf(w, " – |")
			}
		}
		fmt.Fprintln(w)
	}
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
