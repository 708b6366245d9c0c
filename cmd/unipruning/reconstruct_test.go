package main

import (
	"path/filepath"
	"testing"

	"github.com/unipruning/unipruning/internal/shareddata"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/report"
)

// TestExtractReconstruct: extract --reconstruct obs keeps the masks of the
// plain extraction exactly (zeros in the same places), changes the kept
// weights, leaves the dense 4:8 down_proj untouched, records the setting,
// and lowers the perplexity on held-out windows at 50%.
func TestExtractReconstruct(t *testing.T) {
	spec := smallSpec(t, job.ModeGlobal)
	run := search(t, spec, 1)
	ev := evalSpec{datasets: []string{"lines"}, texts: []string{shareddata.Path(t, "text/tinystories/TinyStories-validation-head-794K.txt")}, windows: "100:160"}
	extractTo := func(name, recon string) (string, map[string]float64) {
		out := filepath.Join(t.TempDir(), name)
		reps, err := runExtract(extractFlags{run: run, out: out, sparsities: "0.5", patterns: "4:8", allocation: "uniform", reconstruct: recon, evals: ev})
		if err != nil {
			t.Fatal(err)
		}
		ppl := map[string]float64{}
		for _, r := range reps {
			if r.Settings["reconstruct"] != recon {
				t.Fatalf("report settings %v", r.Settings)
			}
			for _, e := range r.Evals {
				if e.Model == "pruned" {
					ppl[report.TargetName(r)] = e.PPL
					if e.Manifest.Range == nil || e.Manifest.Range.From != 100 || e.Manifest.Windows != 60 {
						t.Fatalf("eval range %+v", e.Manifest)
					}
				}
			}
		}
		return out, ppl
	}
	plain, pplPlain := extractTo("plain", reconstructNone)
	obs, pplOBS := extractTo("obs", reconstructOBS)
	t.Logf("ppl mask only %v, with OBS %v", pplPlain, pplOBS)
	if !(pplOBS["sparsity-0.50"] < pplPlain["sparsity-0.50"]) {
		t.Errorf("50%%: reconstruction did not lower the perplexity (%v → %v)", pplPlain, pplOBS)
	}
	orig, err := model.Open(spec.Model, spec.Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	for _, target := range []string{"sparsity-0.50", "pattern-4of8"} {
		a := openOut(t, filepath.Join(plain, target), spec.Tokenizer)
		b := openOut(t, filepath.Join(obs, target), spec.Tokenizer)
		changed := 0
		for _, tg := range model.Targets(orig.Config) {
			name := tg.TensorName()
			wo, _ := orig.Read(name)
			wa, _ := a.Read(name)
			wb, _ := b.Read(name)
			for i := range wa {
				if (wa[i] == 0) != (wb[i] == 0) && wo[i] != 0 {
					t.Fatalf("%s %s[%d]: mask differs (plain %v, obs %v)", target, name, i, wa[i], wb[i])
				}
				if wa[i] != wb[i] {
					changed++
				}
			}
			if target == "pattern-4of8" && tg.Matrix == model.Down {
				for i := range wb {
					if wb[i] != wo[i] {
						t.Fatalf("%s: dense under 4:8 but weight %d changed", name, i)
					}
				}
			}
		}
		if changed == 0 {
			t.Fatalf("%s: reconstruction changed no weight", target)
		}
	}
}

func openOut(t *testing.T, dir, tok string) *model.Checkpoint {
	t.Helper()
	ck, err := model.Open(filepath.Join(dir, "stories260K.bin"), tok)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return ck
}
