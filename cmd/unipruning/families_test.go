package main

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/unipruning/unipruning/internal/shareddata"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/model/compressed"
)

// family is a small synthetic model of a modern family with its real
// tokenizer copied in by `synth --tokenizer-from`.
type family struct {
	name, tokDir string
	synthArgs    []string
}

var families = []family{
	// Llama-3 shape: tiktoken tokenizer (128,256 ids), GQA, llama3 rope_scaling.
	{"llama3", "tokenizers/llama3", []string{"--arch", "llama", "--heads", "4", "--kv-heads", "2", "--rope-scaling", "llama3", "--rope-theta", "500000"}},
	// Qwen3 shape: Qwen2 byte-level BPE (vocab.json + merges.txt), q/k norms,
	// head_dim 16 with 4 heads on a 32-wide model.
	{"qwen3", "tokenizers/qwen2", []string{"--arch", "qwen3", "--heads", "4", "--kv-heads", "2", "--head-dim", "16", "--rope-theta", "1000000"}},
	// Mistral shape with the LLaMA-2 SentencePiece tokenizer and a sliding window.
	{"mistral", "models/llama2-tokenizer", []string{"--arch", "mistral", "--heads", "4", "--kv-heads", "1", "--sliding-window", "24"}},
}

// synthFamily runs `unipruning synth` for f (bf16, 2 layers, 32 wide).
func synthFamily(t *testing.T, f family) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), f.name)
	cmd := synthCmd()
	cmd.SetArgs(append([]string{"--layers", "2", "--dim", "32", "--hidden", "64", "--max-seq", "256", "--dtype", "bf16",
		"--tokenizer-from", shareddata.Path(t, f.tokDir), "--out", out}, f.synthArgs...))
	cmd.SetOut(os.Stderr)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPipelineModernFamilies: eval, prune, search on 2 in-process shards
// and extract run end to end on Llama-3-, Qwen3- and Mistral-shaped bf16
// models with their families' real tokenizers; outputs stay bf16 and carry
// the sparsity metadata; a compressed output evaluates and holds exactly
// the dense output's weights.
func TestPipelineModernFamilies(t *testing.T) {
	wiki := headLines(t, "text/wikitext-2-raw/wiki.test.raw", 6)
	calib := headLines(t, "text/tinystories/TinyStories-train-head-944K.txt", 100)
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			dir := synthFamily(t, f)
			m, err := openModel(dir, "", true)
			if err != nil {
				t.Fatal(err)
			}
			dense, err := perplexityOf("dense", newScorer(m.ck, m.w, nil), m.tok, "wikitext2", wiki, 64)
			m.ck.Close()
			if err != nil {
				t.Fatal(err)
			}
			// A random model predicts about uniformly: ppl near the vocabulary size.
			if v := float64(m.ck.Config.Vocab); !(dense.PPL > v/4 && dense.PPL < 4*v) {
				t.Fatalf("dense ppl %.1f for a random model of %d tokens", dense.PPL, m.ck.Config.Vocab)
			}
			evals := evalSpec{datasets: []string{"wikitext2"}, texts: []string{wiki}, seqlen: 64, skipDense: true}

			pf := pruneFlags{model: dir, method: "wanda", sparsity: ptr(0.5), calib: calib, calibFormat: "lines",
				nsamples: 2, seqlen: 64, batch: 2, saveCompressed: true, out: filepath.Join(t.TempDir(), "prune")}
			if err := runPrune(pf); err != nil {
				t.Fatal(err)
			}
			checkFamilyOutput(t, pf.out, compressed.SparseBitmask)

			spec := job.Spec{Model: dir, CalibPath: calib, CalibFormat: "lines", Seqlen: 64, Steps: 3, Mode: job.ModeGlobal, CheckpointEvery: 2}
			run := filepath.Join(t.TempDir(), "run")
			if _, err := runSearch(context.Background(), searchFlags{spec: spec, out: run, shards: 2}); err != nil {
				t.Fatal(err)
			}
			// The same 2:4 target written dense and compressed: the compressed
			// one is evaluated (read back through the reader, with the real
			// tokenizer) and holds exactly the dense one's weights.
			var outs [2]string
			var ppl float64
			for i, compress := range []bool{false, true} {
				outs[i] = filepath.Join(t.TempDir(), "x"+strconv.Itoa(i))
				xf := extractFlags{run: run, out: outs[i], patterns: "2:4", allocation: "uniform", saveCompressed: compress}
				if compress {
					xf.evals = evals
				}
				reps, err := runExtract(xf)
				if err != nil {
					t.Fatal(err)
				}
				want := compressed.Dense
				if compress {
					want, ppl = compressed.Sparse24Bitmask, reps[0].Evals[0].PPL
				}
				checkFamilyOutput(t, filepath.Join(outs[i], "pattern-2of4"), want)
			}
			if math.IsNaN(ppl) || ppl <= 1 {
				t.Fatalf("pruned ppl %v", ppl)
			}
			sameModelWeights(t, filepath.Join(outs[0], "pattern-2of4"), filepath.Join(outs[1], "pattern-2of4"))
			t.Logf("%s: dense ppl %.1f, 2:4 ppl %.1f (compressed output)", f.name, dense.PPL, ppl)
		})
	}
}

// sameModelWeights: two output directories hold bit-identical weights.
func sameModelWeights(t *testing.T, a, b string) {
	t.Helper()
	ca, err := model.Open(a, "")
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cb, err := model.Open(b, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	if len(ca.Tensors()) != len(cb.Tensors()) {
		t.Fatalf("%d tensors vs %d", len(ca.Tensors()), len(cb.Tensors()))
	}
	for _, tn := range ca.Tensors() {
		x, _ := ca.Read(tn.Name)
		y, err := cb.Read(tn.Name)
		if err != nil {
			t.Fatal(err)
		}
		for i := range x {
			if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
				t.Fatalf("%s[%d]: %v vs %v", tn.Name, i, x[i], y[i])
			}
		}
	}
}

// checkFamilyOutput: the output keeps bf16 and the tokenizer files, and
// config.json says how the sparse weights are stored.
func checkFamilyOutput(t *testing.T, dir, format string) {
	t.Helper()
	ck, err := model.Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	for _, tn := range ck.Tensors() {
		if tn.DType != "BF16" {
			t.Fatalf("%s: %s is %s, the input was bf16", dir, tn.Name, tn.DType)
		}
	}
	if ck.Sparsity == nil || ck.Sparsity.Format != format {
		t.Fatalf("%s: sparsity config %+v, want format %s", dir, ck.Sparsity, format)
	}
	if ck.TokenizerPath == "" {
		t.Errorf("%s: no tokenizer in the output", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "generation_config.json")); err != nil {
		t.Error(err)
	}
}
