package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipruning/unipruning/internal/shareddata"
	"github.com/unipruning/unipruning/model/compressed"
	"github.com/unipruning/unipruning/report"
)

// headLines writes the first n lines of a shared text to a temp file (a
// short evaluation text keeps the test fast).
func headLines(t *testing.T, rel string, n int) string {
	t.Helper()
	b, err := os.ReadFile(shareddata.Path(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	p := filepath.Join(t.TempDir(), filepath.Base(rel))
	if err := os.WriteFile(p, []byte(strings.Join(lines[:min(n, len(lines))], "")), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCompressedOutputPerplexity: on the real stories260K HF model, a
// 50% and a 2:4 wanda output written dense and with --save-compressed give
// the same perplexity (the compressed directory read back through the
// reader), the compressed one is smaller, and report.json says so.
func TestCompressedOutputPerplexity(t *testing.T) {
	text := headLines(t, "text/tinystories/TinyStories-validation-head-794K.txt", 150)
	for _, target := range []string{"0.5", "2:4"} {
		var ppl [2]float64
		var st [2]*report.Report
		for i, compress := range []bool{false, true} {
			f := storiesPrune(t, "wanda")
			f.model = shareddata.Path(t, "models/stories260K-hf")
			if target == "2:4" {
				f.pattern = target
			} else {
				f.sparsity = ptr(0.5)
			}
			f.saveCompressed = compress
			f.evals = evalSpec{datasets: []string{"lines"}, texts: []string{text}, skipDense: true}
			if err := runPrune(f); err != nil {
				t.Fatal(err)
			}
			rep, err := report.Read(filepath.Join(f.out, "report.json"))
			if err != nil {
				t.Fatal(err)
			}
			st[i] = rep
			// The pruned ppl of the report comes from the written directory
			// reloaded as `eval --model DIR` loads it (evalOutput).
			ppl[i] = rep.Evals[0].PPL
			for _, name := range []string{"config.json", "generation_config.json", "tok512.bin"} {
				if _, err := os.Stat(filepath.Join(f.out, name)); err != nil {
					t.Errorf("%s missing from the output: %v", name, err)
				}
			}
		}
		if ppl[0] != ppl[1] {
			t.Errorf("%s: dense output ppl %v, compressed %v", target, ppl[0], ppl[1])
		}
		d, c := st[0].Storage, st[1].Storage
		want := compressed.SparseBitmask
		if target == "2:4" {
			want = compressed.Sparse24Bitmask
		}
		if d == nil || c == nil || d.Format != compressed.Dense || c.Format != want || c.CompressedWeights != 35 ||
			c.DenseBytes != d.DenseBytes || !(c.StoredBytes < d.StoredBytes) {
			t.Fatalf("%s: storage %+v / %+v", target, d, c)
		}
		t.Logf("%s: ppl %.4f both ways; weights %d B dense, %d B %s (%.1f%%), global sparsity %.4f",
			target, ppl[0], d.StoredBytes, c.StoredBytes, c.Format, 100*c.Ratio(), c.GlobalSparsity)
	}
	// --save-compressed on a llama2.c model fails before any work.
	f := storiesPrune(t, "wanda")
	f.sparsity, f.saveCompressed = ptr(0.5), true
	if err := runPrune(f); err == nil || !strings.Contains(err.Error(), "Hugging Face") {
		t.Errorf("llama2.c --save-compressed: %v", err)
	}
	if _, err := os.Stat(f.out); err == nil {
		t.Error("a refused run left its output")
	}
}
