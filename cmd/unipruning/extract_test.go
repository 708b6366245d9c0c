package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unipruning/unipruning/internal/shareddata"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/prune"
	"github.com/unipruning/unipruning/prune/gammastore"
)

// TestExtractOneShot: one Γ gives every target; masks are applied to the
// original weights; extraction costs a small fraction of the search.
func TestExtractOneShot(t *testing.T) {
	spec := smallSpec(t, job.ModeGlobal)
	t0 := time.Now()
	run := search(t, spec, 1)
	searchTime := time.Since(t0)
	out := filepath.Join(t.TempDir(), "x")
	t1 := time.Now()
	reps, err := runExtract(extractFlags{run: run, out: out, sparsities: "0.5,0.7", patterns: "2:4", allocation: "uniform"})
	if err != nil {
		t.Fatal(err)
	}
	extractTime := time.Since(t1)
	t.Logf("search %v, extraction of 3 targets %v (%.1f%%)", searchTime, extractTime, 100*extractTime.Seconds()/searchTime.Seconds())
	if len(reps) != 3 {
		t.Fatalf("%d reports", len(reps))
	}
	// Each output is the ORIGINAL weights under its mask, as prune's are.
	for name, target := range map[string]string{"sparsity-0.50": "0.5", "sparsity-0.70": "0.7", "pattern-2of4": "2:4"} {
		checkPruned(t, pruneFlags{model: spec.Model, out: filepath.Join(out, name)}, "unipruning", target)
	}
	if reps[0].Total < 0.4999 || reps[0].Total > 0.5001 || reps[1].Total < 0.6999 || reps[1].Total > 0.7001 {
		t.Fatalf("sparsities %v %v", reps[0].Total, reps[1].Total)
	}
}

// TestExtractGlobalAllocation: global allocation hits the total exactly
// and honours the per-matrix cap.
func TestExtractGlobalAllocation(t *testing.T) {
	run := search(t, smallSpec(t, job.ModeFrozen), 1)
	out := filepath.Join(t.TempDir(), "g")
	reps, err := runExtract(extractFlags{run: run, out: out, sparsities: "0.6", allocation: "global", maxSparsity: 0.75})
	if err != nil {
		t.Fatal(err)
	}
	r := reps[0]
	if want := r.Targets - prune.PruneCount(r.Targets, 0.6); r.Kept != want {
		t.Fatalf("global allocation kept %d of %d, want exactly %d", r.Kept, r.Targets, want)
	}
	for _, m := range r.Matrices {
		if m.Sparsity > 0.75+1e-9 {
			t.Fatalf("%s at %.4f exceeds the 0.75 cap", m.Name, m.Sparsity)
		}
	}
}

// TestExtractBadInput: a Γ store of another model, a corrupted part and
// incompatible flags are refused with clear errors, nothing written.
func TestExtractBadInput(t *testing.T) {
	run := search(t, smallSpec(t, job.ModeFrozen), 1)
	cases := []struct {
		f    extractFlags
		want string
	}{
		{extractFlags{run: run, sparsities: "0.5", model: shareddata.Path(t, "models/stories260K-hf")}, "searched on another model"},
		{extractFlags{run: run, sparsities: "0.5", allocation: "global", byRow: true}, "uniform allocation only"},
		{extractFlags{run: run, sparsities: "0.5", allocation: "uniform", maxSparsity: 0.9}, "global allocation only"},
		{extractFlags{run: run, sparsities: "0.5", allocation: "global", maxSparsity: 0.4}, "must be in"},
		{extractFlags{run: run, sparsities: "0.5,0.5"}, "given twice"},
		{extractFlags{run: run}, "at least one"},
		{extractFlags{run: run, patterns: "3:2"}, "1 ≤ N < M"},
		{extractFlags{run: run, sparsities: "abc"}, "not a number"},
		{extractFlags{run: filepath.Join(t.TempDir(), "nothing"), sparsities: "0.5"}, "search run directory"},
	}
	for _, c := range cases {
		c.f.out = filepath.Join(t.TempDir(), "x")
		if c.f.allocation == "" {
			c.f.allocation = "uniform"
		}
		_, err := runExtract(c.f)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want an error containing %q", err, c.want)
		}
		if _, serr := os.Stat(c.f.out); serr == nil {
			t.Errorf("a failed extract left %s", c.f.out)
		}
	}
	// Corrupt one Γ part: its checksum no longer matches.
	st, _ := gammastore.Open(run)
	part := filepath.Join(run, st.Parts[0].File)
	b, _ := os.ReadFile(part)
	b[len(b)/2] ^= 0xff
	os.WriteFile(part, b, 0o644)
	_, err := runExtract(extractFlags{run: run, out: filepath.Join(t.TempDir(), "y"), sparsities: "0.5", allocation: "uniform"})
	if err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("corrupted part: %v", err)
	}
}

// TestResumeCorruptCheckpoint (issue 12 class 2): --resume falls back
// past a corrupt newest checkpoint to the newest intact one, and past
// every checkpoint to step 0, and either way ends with the Γ of an
// uninterrupted run, bitwise.
func TestResumeCorruptCheckpoint(t *testing.T) {
	spec := smallSpec(t, job.ModeGlobal)
	ref := search(t, spec, 1)
	for _, tc := range []struct {
		name    string
		corrupt func(step int) bool
		want    int // the step resumed from
	}{
		{"newest", func(step int) bool { return step == 9 }, 6},
		{"all", func(int) bool { return true }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := search(t, spec, 1)
			os.Remove(filepath.Join(out, gammastore.ManifestName)) // as if killed before the end
			var led struct {
				Checkpoints map[int]map[string]job.Checkpoint `json:"checkpoints"`
			}
			b, err := os.ReadFile(filepath.Join(out, "ledger.json"))
			if err != nil || json.Unmarshal(b, &led) != nil || len(led.Checkpoints) != 3 {
				t.Fatalf("ledger: %v, %d checkpoints", err, len(led.Checkpoints))
			}
			for step, ms := range led.Checkpoints {
				for _, m := range ms {
					if tc.corrupt(step) {
						p := filepath.Join(out, "checkpoints", m.Key[:2], m.Key)
						b, _ := os.ReadFile(p)
						os.WriteFile(p, b[:len(b)/2], 0o644) // truncated
					}
				}
			}
			man, err := runSearch(context.Background(), searchFlags{spec: spec, out: out, shards: 1, resume: true})
			if err != nil {
				t.Fatalf("resume past corrupt checkpoints: %v", err)
			}
			if man.Resumed != tc.want {
				t.Fatalf("resumed from step %d, want %d", man.Resumed, tc.want)
			}
			requireSameGamma(t, ref, out, "resumed past corrupt checkpoints")
		})
	}
}
