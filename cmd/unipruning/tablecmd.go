package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/report"
)

func tableCmd() *cobra.Command {
	var roots []string
	var md, pngDir, title string
	var order, wins, against []string
	cmd := &cobra.Command{
		Use:   "table",
		Short: "Summarise output directories (every report.json under --root) as a perplexity table and charts",
		Long: `Collects every report.json under --root (as written by prune, extract or run, at any
depth) into a markdown table of pruned perplexity — rows are the output directories relative
to --root (extract's and run's target subdirectories and run's pruned/ level left out),
columns are the targets (50% … 2:4) — with the dense perplexity, and optionally draws PNG
charts: perplexity against sparsity, perplexity of the N:M patterns, and the per-matrix
sparsity of every global-allocation output. Reports it cannot place (no pruned perplexity,
or a second report for the same row and column) are listed on stderr with the reason.

Each cell shows the achieved share of pruned target weights in parentheses, marked † when
it falls short of the column's label (N:M leaves matrices whose input width is not a
multiple of M dense). Several --root directories (the same experiment repeated, e.g. one
per calibration seed) merge into one table of mean ± sample standard deviation.`,
		Example: `  unipruning table --root out --md out/table.md --png out/charts
  unipruning table --root out/seed-0 --root out/seed-1 --root out/seed-2 --md out/table.md`,
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := report.CollectAll(roots)
			if res != nil {
				for _, s := range res.Skipped {
					logf("table: skipped %s: %s", s.Path, s.Reason)
				}
			}
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
			res.WriteMarkdown(w, order, title)
			if len(wins) > 0 {
				if len(against) == 0 {
					return missingFlag("against", "--wins compares with the rows named by --against")
				}
				fmt.Fprintln(w)
				res.WriteWins(w, wins, against)
			}
			if pngDir != "" {
				return res.DrawCharts(pngDir, order)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&roots, "root", nil, "directory holding the output directories (repeatable: one table of means over the roots)")
	fl.StringVar(&md, "md", "", "write the markdown table here (default: stdout)")
	fl.StringVar(&pngDir, "png", "", "write PNG charts into this directory (default: none)")
	fl.StringVar(&title, "title", "", "a heading line above the table (default: none)")
	fl.StringSliceVar(&wins, "wins", nil, "also tabulate, for these rows, in how many runs (roots) each beats every --against row per column, and the worst margin (default: none)")
	fl.StringSliceVar(&against, "against", nil, "the rows --wins compares with, e.g. magnitude,wanda,ria,sparsegpt (default: none)")
	fl.StringSliceVar(&order, "order", nil, "row order of labels; others follow alphabetically (default: alphabetical)")
	markRequired(cmd, "root")
	return cmd
}
