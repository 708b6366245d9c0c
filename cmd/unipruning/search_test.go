package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unipruning/unipruning/internal/shareddata"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/prune/gammastore"
)

// smallSpec is a quick search on the real stories260K model.
func smallSpec(t *testing.T, mode string) job.Spec {
	return job.Spec{
		Model:       shareddata.Path(t, "models/stories260K/stories260K.bin"),
		Tokenizer:   shareddata.Path(t, "models/stories260K/tok512.bin"),
		CalibPath:   shareddata.Path(t, "text/tinystories/TinyStories-train-head-944K.txt"),
		CalibFormat: "lines", Seqlen: 64, Steps: 12, Mode: mode, CheckpointEvery: 3,
	}
}

func search(t *testing.T, spec job.Spec, shards int) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "run")
	if _, err := runSearch(context.Background(), searchFlags{spec: spec, out: out, shards: shards}); err != nil {
		t.Fatal(err)
	}
	return out
}

// gammaBytes returns the Γ store's parts concatenated in layer order.
func gammaBytes(t *testing.T, dir string) []byte {
	t.Helper()
	st, err := gammastore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, p := range st.Parts {
		b, err := os.ReadFile(filepath.Join(dir, p.File))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// gammaValues flattens Γ and first-step in canonical order, so stores
// split into different parts can be compared value by value.
func gammaValues(t *testing.T, dir string) ([]float32, []int32) {
	st, err := gammastore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range st.Gamma {
		names = append(names, n)
	}
	sort.Strings(names)
	var g []float32
	var f []int32
	for _, n := range names {
		g = append(g, st.Gamma[n]...)
		f = append(f, st.First[n]...)
	}
	return g, f
}

// requireSameGamma fails unless the Γ stores in dirs want and got hold
// bitwise the same Γ and first-steps.
func requireSameGamma(t *testing.T, want, got, what string) {
	t.Helper()
	ga, fa := gammaValues(t, want)
	gb, fb := gammaValues(t, got)
	if !sameBits(ga, gb) {
		t.Fatalf("%s: Γ differs", what)
	}
	if !slices.Equal(fa, fb) {
		t.Fatalf("%s: first-steps differ", what)
	}
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && !(a[i] != a[i] && b[i] != b[i]) {
			return false
		}
	}
	return true
}

// TestSearchDeterministic: two identical searches give bitwise-identical
// Γ, and so does the same search spread over 3 shards.
func TestSearchDeterministic(t *testing.T) {
	for _, mode := range []string{job.ModeGlobal, job.ModeFrozen, job.ModeReference} {
		t.Run(mode, func(t *testing.T) {
			spec := smallSpec(t, mode)
			a, b := search(t, spec, 1), search(t, spec, 1)
			if !bytes.Equal(gammaBytes(t, a), gammaBytes(t, b)) {
				t.Fatal("two identical searches produced different Γ stores")
			}
			requireSameGamma(t, a, search(t, spec, 3), "3 shards against 1 shard")
		})
	}
}

// TestSearchKillResume: a search killed with SIGKILL at a random step and
// resumed gives bitwise the Γ of an uninterrupted run.
func TestSearchKillResume(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	spec := smallSpec(t, job.ModeGlobal)
	spec.Steps, spec.CheckpointEvery = 24, 4
	ref := search(t, spec, 2)
	bin := buildBinary(t)
	out := filepath.Join(t.TempDir(), "run")
	args := []string{"search", "--model", spec.Model, "--tokenizer", spec.Tokenizer, "--mode", spec.Mode,
		"--calib", spec.CalibPath, "--calib-format", "lines", "--seqlen", "64", "--steps", "24",
		"--checkpoint-every", "4", "--shards", "2", "--out", out}
	killAndResume(t, bin, args, out, ref, "resumed search")
}

// killAndResume starts `bin args` (a search into out), kills it with
// SIGKILL at a random moment once step 8 is in its ledger, resumes it
// with --resume alone (the run's own settings from spec.json) and
// requires the Γ of the uninterrupted run ref, bitwise.
func killAndResume(t *testing.T, bin string, args []string, out, ref, what string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once a checkpoint beyond the first few steps exists, at a
	// random moment.
	killAfter := time.Duration(rand.IntN(400)) * time.Millisecond
	waitForLedgerStep(t, filepath.Join(out, "ledger.json"), 8, 60*time.Second)
	time.Sleep(killAfter)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(out, gammastore.ManifestName)); err == nil {
		t.Skip("the search finished before the kill; nothing to resume")
	}
	// --resume alone takes the run's own settings from spec.json.
	resume := exec.Command(bin, "search", "--resume", "--shards", "2", "--out", out)
	if b, err := resume.CombinedOutput(); err != nil {
		t.Fatalf("resume failed: %v\n%s", err, b)
	} else if !strings.Contains(string(b), "resumed from the checkpoint of step") {
		t.Fatalf("resume did not start from a checkpoint:\n%s", b)
	}
	requireSameGamma(t, ref, out, what)
}

func waitForLedgerStep(t *testing.T, path string, step int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(`"step": `+strconv.Itoa(step))) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the search did not reach step %d in %v", step, timeout)
}

// buildBinary compiles the command with the same matrix kernel as this
// test process: bitwise identity holds for one build (OpenBLAS and gonum
// round differently).
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "unipruning")
	args := []string{"build", "-o", bin}
	if nn.ActiveKernel() == "openblas" {
		args = append(args, "-tags", "openblas")
	}
	cmd := exec.Command("go", append(args, ".")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
