package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/unipruning/unipruning/eval"
	"github.com/unipruning/unipruning/internal/shareddata"
	"github.com/unipruning/unipruning/model"
)

// TestEvalStreamModes: eval gives the same perplexity bit for bit whether
// the model is held whole, streamed with activations in memory, or
// streamed with activations spilled to disk; a budget too small refuses
// up front with "needs X, the machine offers Y" (exit 1); bad values of
// the new flags exit 2.
func TestEvalStreamModes(t *testing.T) {
	t.Cleanup(func() { debug.SetMemoryLimit(math.MaxInt64) })
	m := shareddata.Path(t, "models/stories260K/stories260K.bin")
	tok := shareddata.Path(t, "models/stories260K/tok512.bin")
	txt := shareddata.Path(t, "text/tinystories/TinyStories-validation-head-794K.txt")
	base := []string{"eval", "--model", m, "--tokenizer", tok, "--dataset", "lines", "--text", txt, "--seqlen", "128", "--limit", "40", "--json"}
	spill := t.TempDir()
	var ppl []float64
	for _, extra := range [][]string{{"--stream", "off"}, {"--stream", "on"}, {"--stream", "on", "--spill-dir", spill}} {
		err, _, out := execute(t, append(base, extra...)...)
		if err != nil {
			t.Fatalf("%v: %v", extra, err)
		}
		var r struct {
			PPL float64 `json:"ppl"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil || r.PPL <= 1 {
			t.Fatalf("%v: %v in %q", extra, err, out)
		}
		ppl = append(ppl, r.PPL)
	}
	if ppl[0] != ppl[1] || ppl[0] != ppl[2] {
		t.Fatalf("perplexity whole / streamed / spilled: %v", ppl)
	}
	if left, _ := os.ReadDir(spill); len(left) != 0 {
		t.Fatalf("spill files left: %v", left)
	}
	cases := []struct {
		extra []string
		want  string
		code  int
	}{
		{[]string{"--memory", "20MiB"}, "needs", 1},
		{[]string{"--memory", "20MiB", "--stream", "off"}, "with the whole model in memory (--stream off) needs", 1},
		{[]string{"--stream", "maybe"}, "--stream maybe: want auto, on or off", 2},
		{[]string{"--memory", "lots"}, "--memory lots: not a size", 2},
		{[]string{"--spill-dir", filepath.Join(spill, "none")}, "not a directory", 2},
	}
	for _, c := range cases {
		err, code, _ := execute(t, append(base, c.extra...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) || code != c.code {
			t.Errorf("%v: got %v (exit %d), want %q (exit %d)", c.extra, err, code, c.want, c.code)
		}
		if err != nil && code == 1 && !strings.Contains(err.Error(), "the machine offers") {
			t.Errorf("%v: %v lacks \"the machine offers\"", c.extra, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	for s, want := range map[string]uint64{"6GiB": 6 << 30, "512MiB": 512 << 20, "1.5g": 3 << 29, "2048": 2048, "64 kB": 64 << 10} {
		if got, err := parseSize(s); err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "GiB", "-1G", "0", "x1M"} {
		if _, err := parseSize(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

// smallMachine makes the machine offer limit bytes for the test's duration.
func smallMachine(t *testing.T, limit uint64) {
	old := memoryLimit
	memoryLimit = func() (uint64, string, error) { return limit, "test limit", nil }
	t.Cleanup(func() { memoryLimit = old; debug.SetMemoryLimit(math.MaxInt64) })
}

// TestOneProcessMemoryChecks: on a machine too small for the job, prune,
// search (so run) and eval --stream off refuse before any work with "needs X GiB, the
// machine offers Y" (exit 1, no output written), while eval --stream auto
// falls back to streaming and scores the same perplexity.
func TestOneProcessMemoryChecks(t *testing.T) {
	m := shareddata.Path(t, "models/stories260K/stories260K.bin")
	tok := shareddata.Path(t, "models/stories260K/tok512.bin")
	txt := shareddata.Path(t, "text/tinystories/TinyStories-validation-head-794K.txt")
	out := filepath.Join(t.TempDir(), "out")
	ev := []string{"eval", "--model", m, "--tokenizer", tok, "--dataset", "lines", "--text", txt, "--seqlen", "64", "--limit", "8", "--batch", "2", "--json"}
	_, _, whole := execute(t, ev...)
	smallMachine(t, 20<<20)
	for _, args := range [][]string{
		{"prune", "--model", m, "--tokenizer", tok, "--method", "wanda", "--sparsity", "0.5", "--calib", txt,
			"--calib-format", "lines", "--nsamples", "8", "--seqlen", "64", "--out", out},
		append(ev, "--stream", "off"),
		{"search", "--model", m, "--tokenizer", tok, "--calib", txt, "--calib-format", "lines", "--steps", "4",
			"--seqlen", "64", "--out", out},
	} {
		err, code, _ := execute(t, args...)
		if err == nil || code != 1 || !strings.Contains(err.Error(), "the machine offers 0.02 GiB (test limit)") {
			t.Errorf("%s %s: got %v (exit %d)", args[0], args[len(args)-1], err, code)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a refused prune or search wrote its output")
	}
	// A machine between the streamed and the whole-model estimates: auto
	// must stream (whole would be refused) and give the same bits.
	ck, err := model.Open(m, tok)
	if err != nil {
		t.Fatal(err)
	}
	ck.Close()
	whole64 := eval.InMemoryFootprint(ck.Config, 8, 64, 2).Total()
	stream64 := eval.StreamedFootprint(ck.Config, 8, 64, 2, false).Total()
	if stream64 >= whole64 {
		t.Fatalf("streamed estimate %d not below whole %d", stream64, whole64)
	}
	smallMachine(t, (stream64+whole64)/2)
	err, _, streamed := execute(t, ev...)
	if err != nil {
		t.Fatal(err)
	}
	var a, b struct {
		PPL float64 `json:"ppl"`
	}
	if json.Unmarshal([]byte(whole), &a) != nil || json.Unmarshal([]byte(streamed), &b) != nil || a.PPL != b.PPL || a.PPL <= 1 {
		t.Fatalf("whole %q, streamed on a small machine %q", whole, streamed)
	}
}
