package main

import (
	"path/filepath"
	"testing"

	"github.com/unipruning/unipruning/job"
)

// TestSearchChunkedShards: a search with --chunk gives bitwise the same Γ
// on 1, 2 and 3 in-process shards (issue 16).
func TestSearchChunkedShards(t *testing.T) {
	spec := smallSpec(t, job.ModeGlobal)
	spec.Chunk = 24 // windows of 64: chunks 24, 24, 16
	one := search(t, spec, 1)
	requireSameGamma(t, one, search(t, spec, 2), "--chunk 24, 2 shards against 1")
	requireSameGamma(t, one, search(t, spec, 3), "--chunk 24, 3 shards against 1")
}

// TestSearchChunkedKillResume: a chunked search on 2 shards killed with
// SIGKILL and resumed with --resume alone (which keeps the run's chunk
// size) gives bitwise the Γ of an uninterrupted 1-shard run.
func TestSearchChunkedKillResume(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	spec := smallSpec(t, job.ModeGlobal)
	spec.Steps, spec.CheckpointEvery, spec.Chunk = 24, 4, 24
	ref := search(t, spec, 1)
	bin := buildBinary(t)
	out := filepath.Join(t.TempDir(), "run")
	killAndResume(t, bin, []string{"search", "--model", spec.Model, "--tokenizer", spec.Tokenizer, "--mode", spec.Mode,
		"--calib", spec.CalibPath, "--calib-format", "lines", "--seqlen", "64", "--steps", "24",
		"--checkpoint-every", "4", "--chunk", "24", "--shards", "2", "--out", out}, out, ref, "resumed chunked search")
}
