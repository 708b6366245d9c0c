package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/report"
)

// resultCell is one (method, target) measurement.
type resultCell struct {
	ppl float64
	rep *report.Report
}

func tableCmd() *cobra.Command {
	var root, md, pngDir, title string
	var order []string
	cmd := &cobra.Command{
		Use:   "table",
		Short: "Summarise output directories (<root>/<label>/<target>/report.json) as a perplexity table and charts",
		Long: `Collects every <root>/<label>/<target>/report.json (as written by prune, extract or run)
into a markdown table of pruned perplexity — rows are labels (methods), columns are targets
(sparsity-0.50 … pattern-2of4) — with the dense perplexity, and optionally draws PNG charts:
perplexity against sparsity, and the per-matrix sparsity of every global-allocation output.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cells, dense, err := collectResults(root)
			if err != nil {
				return err
			}
			var w io.Writer = os.Stdout
			if md != "" {
				f, err := os.Create(md)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			writeTable(w, cells, dense, order, title)
			if pngDir != "" {
				return drawCharts(cells, dense, pngDir)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&root, "root", "", "directory holding <label>/<target>/report.json (required)")
	fl.StringVar(&md, "md", "", "write the markdown table here (default: stdout)")
	fl.StringVar(&pngDir, "png", "", "write PNG charts into this directory")
	fl.StringVar(&title, "title", "", "a heading line above the table")
	fl.StringSliceVar(&order, "order", nil, "row order of labels (others follow alphabetically)")
	return cmd
}

func collectResults(root string) (map[string]map[string]resultCell, float64, error) {
	if root == "" {
		return nil, 0, fmt.Errorf("--root is required")
	}
	cells := map[string]map[string]resultCell{}
	dense := 0.0
	paths, _ := filepath.Glob(filepath.Join(root, "*", "*", "report.json"))
	if len(paths) == 0 {
		return nil, 0, fmt.Errorf("no <label>/<target>/report.json under %s", root)
	}
	for _, p := range paths {
		rep, err := report.Read(p)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", p, err)
		}
		target := filepath.Base(filepath.Dir(p))
		label := filepath.Base(filepath.Dir(filepath.Dir(p)))
		for _, e := range rep.Evals {
			switch e.Model {
			case "pruned":
				if cells[label] == nil {
					cells[label] = map[string]resultCell{}
				}
				cells[label][target] = resultCell{ppl: e.PPL, rep: rep}
			case "dense":
				dense = e.PPL
			}
		}
	}
	if len(cells) == 0 {
		return nil, 0, fmt.Errorf("no report under %s has a pruned model's perplexity (give prune, extract or run --eval-text)", root)
	}
	return cells, dense, nil
}

func targetColumns(cells map[string]map[string]resultCell) []string {
	set := map[string]bool{}
	for _, row := range cells {
		for t := range row {
			set[t] = true
		}
	}
	var cols []string
	for t := range set {
		cols = append(cols, t)
	}
	sort.Slice(cols, func(i, j int) bool { // sparsities first, then patterns
		pi, pj := strings.HasPrefix(cols[i], "pattern"), strings.HasPrefix(cols[j], "pattern")
		if pi != pj {
			return !pi
		}
		return cols[i] < cols[j]
	})
	return cols
}

func rowOrder(cells map[string]map[string]resultCell, order []string) []string {
	var rows []string
	seen := map[string]bool{}
	for _, o := range order {
		if _, ok := cells[o]; ok {
			rows, seen[o] = append(rows, o), true
		}
	}
	var rest []string
	for l := range cells {
		if !seen[l] {
			rest = append(rest, l)
		}
	}
	sort.Strings(rest)
	return append(rows, rest...)
}

func columnName(t string) string {
	if s, ok := strings.CutPrefix(t, "sparsity-"); ok {
		if v, err := strconv.ParseFloat(s, 64); err == nil {
			return strconv.FormatFloat(100*v, 'f', -1, 64) + "%"
		}
		return s
	}
	return strings.Replace(strings.TrimPrefix(t, "pattern-"), "of", ":", 1)
}

func writeTable(w io.Writer, cells map[string]map[string]resultCell, dense float64, order []string, title string) {
	cols := targetColumns(cells)
	if title != "" {
		fmt.Fprintf(w, "%s\n\n", title)
	}
	fmt.Fprintf(w, "| method |")
	for _, c := range cols {
		fmt.Fprintf(w, " %s |", columnName(c))
	}
	fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("---:|", len(cols)))
	fmt.Fprintf(w, "| dense | %.3f |%s\n", dense, strings.Repeat(" |", len(cols)-1))
	best := map[string]float64{}
	for _, row := range cells {
		for c, cell := range row {
			if b, ok := best[c]; !ok || cell.ppl < b {
				best[c] = cell.ppl
			}
		}
	}
	for _, row := range rowOrder(cells, order) {
		fmt.Fprintf(w, "| %s |", row)
		for _, c := range cols {
			if cell, ok := cells[row][c]; ok && cell.ppl == best[c] {
				fmt.Fprintf(w, " **%.3f** |", cell.ppl)
			} else if ok {
				fmt.Fprintf(w, " %.3f |", cell.ppl)
			} else {
				fmt.Fprintf(w, " – |")
			}
		}
		fmt.Fprintln(w)
	}
}

func drawCharts(cells map[string]map[string]resultCell, dense float64, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var series []report.Series
	for _, label := range rowOrder(cells, nil) {
		s := report.Series{Name: label, Points: map[float64]float64{}}
		for t, cell := range cells[label] {
			if cell.rep.Sparsity != nil && strings.HasPrefix(t, "sparsity-") {
				s.Points[*cell.rep.Sparsity] = cell.ppl
			}
		}
		if len(s.Points) > 0 {
			series = append(series, s)
		}
		for t, cell := range cells[label] {
			if cell.rep.Allocation == "global" {
				name := filepath.Join(dir, fmt.Sprintf("matrix-sparsity-%s-%s.png", label, t))
				if err := report.PlotMatrixSparsity(cell.rep, fmt.Sprintf("%s, %s: per-matrix sparsity (global allocation)", label, t), name); err != nil {
					return err
				}
			}
		}
	}
	return report.PlotPPLvsSparsity(series, dense, "perplexity against sparsity", filepath.Join(dir, "ppl-vs-sparsity.png"))
}
