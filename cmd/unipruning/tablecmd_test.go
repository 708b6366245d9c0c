package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipruning/unipruning/report"
)

// TestTableNeedsPrunedEvals: reports without a pruned model's perplexity
// (extract run without --eval-text) give a clear error, not a broken table.
func TestTableNeedsPrunedEvals(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "wanda", "sparsity-0.50")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rep := &report.Report{Evals: []report.Eval{{Model: "dense", PPL: 5.4}}}
	if err := rep.Write(filepath.Join(dir, "report.json")); err != nil {
		t.Fatal(err)
	}
	_, err := report.Collect(root)
	if err == nil || !strings.Contains(err.Error(), "no report under") {
		t.Fatalf("got %v, want the no-pruned-perplexity error", err)
	}
}
