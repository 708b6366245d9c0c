package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/unipruning/unipruning/job"
)

// TestLRAuto: search --lr auto runs one probe per grid rate, picks the one
// with the lowest held-out calibration NLL (ties to the smaller rate),
// searches with it, records the probe table beside the Γ store and in
// extract's reports, keeps the probes within one search's tokens, and
// chooses the same rate, with the same scores, when run again.
func TestLRAuto(t *testing.T) {
	spec := smallSpec(t, job.ModeGlobal)
	run := func() (*lrChoice, job.Spec, string) {
		out := filepath.Join(t.TempDir(), "run")
		if _, err := runSearch(nil, searchFlags{spec: spec, out: out, shards: 1, lrAuto: true}); err != nil {
			t.Fatal(err)
		}
		ch, err := readLRChoice(out)
		if err != nil || ch == nil {
			t.Fatalf("lr-auto.json: %v %v", ch, err)
		}
		var got job.Spec
		b, err := os.ReadFile(filepath.Join(out, "spec.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		return ch, got, out
	}
	ch, got, out := run()
	if len(ch.Probes) != len(lrGrid) || len(ch.Targets) != len(defaultLRTargets) {
		t.Fatalf("probes %d targets %v", len(ch.Probes), ch.Targets)
	}
	best := ch.Probes[0]
	for _, p := range ch.Probes {
		if p.Score < best.Score {
			best = p
		}
		if !(p.Score > ch.DenseNLL) {
			t.Errorf("probe %g scores %v, not above the dense %v", p.LR, p.Score, ch.DenseNLL)
		}
	}
	if ch.LR != best.LR || got.LR != ch.LR {
		t.Fatalf("chose %g, best probe %g, search ran with %g", ch.LR, best.LR, got.LR)
	}
	if ch.ProbeTokens > ch.SearchTokens || ch.HeldOutFirst != spec.Steps {
		t.Fatalf("probe tokens %d > search tokens %d, or held-out windows from %d", ch.ProbeTokens, ch.SearchTokens, ch.HeldOutFirst)
	}
	again, _, _ := run()
	for i := range ch.Probes {
		if again.Probes[i].Score != ch.Probes[i].Score {
			t.Fatalf("probe %g scored %v then %v", ch.Probes[i].LR, ch.Probes[i].Score, again.Probes[i].Score)
		}
	}
	reps, err := runExtract(extractFlags{run: out, out: filepath.Join(t.TempDir(), "x"), sparsities: "0.5"})
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := reps[0].Settings["lr_auto"].(*lrChoice); !ok || c.LR != ch.LR {
		t.Fatalf("report settings lack the probe table: %v", reps[0].Settings["lr_auto"])
	}
	frozen := smallSpec(t, job.ModeFrozen)
	if _, err := runSearch(nil, searchFlags{spec: frozen, out: filepath.Join(t.TempDir(), "f"), shards: 1, lrAuto: true}); err == nil || exitCode(err) != 2 {
		t.Fatalf("frozen with --lr auto: %v", err)
	}
	var v lrFlag
	var lr float64
	var auto bool
	v = lrFlag{&lr, &auto}
	if v.Set("auto") != nil || !auto || v.String() != "auto" || v.Set("3e-3") != nil || auto || lr != 3e-3 || v.Set("-1") == nil || v.Set("fast") == nil {
		t.Fatalf("lr flag parsing: %v %v", lr, auto)
	}
}
