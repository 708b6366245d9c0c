package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/unipruning/unipruning/internal/shareddata"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/prune/gammastore"
)

// TestSearchDryRun: --dry-run --json prints the memory plan with the
// fields DESIGN and issue 14 name, counts every parameter of the model,
// splits it over the shards asked for, and creates nothing.
func TestSearchDryRun(t *testing.T) {
	m := shareddata.Path(t, "models/stories260K/stories260K.bin")
	tok := shareddata.Path(t, "models/stories260K/tok512.bin")
	calib := shareddata.Path(t, "text/tinystories/TinyStories-train-head-944K.txt")
	out := filepath.Join(t.TempDir(), "run")
	err, code, stdout := execute(t, "search", "--model", m, "--tokenizer", tok, "--calib", calib, "--calib-format", "lines",
		"--seqlen", "64", "--steps", "4", "--shards", "2", "--out", out, "--dry-run", "--json")
	if err != nil || code != 0 {
		t.Fatalf("dry run: %v (exit %d)", err, code)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("dry run created %s", out)
	}
	var plan struct {
		Params        int64   `json:"params"`
		BytesPerParam float64 `json:"bytes_per_param"`
		BytesTotal    int64   `json:"bytes_total"`
		PerShard      []struct {
			Layers [2]int `json:"layers"`
			Bytes  int64  `json:"bytes"`
		} `json:"per_shard"`
	}
	if err := json.Unmarshal([]byte(stdout), &plan); err != nil {
		t.Fatalf("%v in %q", err, stdout)
	}
	ck, err := model.Open(m, tok)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	var params int64
	for _, tm := range ck.Tensors() {
		params += int64(tm.Elements())
	}
	if plan.Params != params {
		t.Errorf("plan counts %d parameters, the model has %d", plan.Params, params)
	}
	if len(plan.PerShard) != 2 || plan.PerShard[0].Layers[1] != plan.PerShard[1].Layers[0] || plan.PerShard[1].Layers[1] != ck.Config.Layers {
		t.Errorf("per-shard layers %+v", plan.PerShard)
	}
	if sum := plan.PerShard[0].Bytes + plan.PerShard[1].Bytes; sum != plan.BytesTotal || plan.BytesPerParam < 24 {
		t.Errorf("shards %d bytes, total %d, %.1f bytes/param", sum, plan.BytesTotal, plan.BytesPerParam)
	}
}

// TestSearchRecordsResources: a search's gamma.json records its per-step
// phases, its peak RSS and the plan's bytes.
func TestSearchRecordsResources(t *testing.T) {
	out := search(t, smallSpec(t, job.ModeGlobal), 2)
	b, err := os.ReadFile(filepath.Join(out, "gamma.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man gammastore.Manifest
	if err := json.Unmarshal(b, &man); err != nil {
		t.Fatal(err)
	}
	r := man.Resources
	if r == nil || len(r.PlannedBytes) != 2 || len(r.PeakRSS) != 1 || r.PeakRSS[0] == 0 {
		t.Fatalf("resources %+v", r)
	}
	for _, k := range []string{"forward", "backward", "metric", "optimizer", "z_gamma", "threshold", "other"} {
		if v, ok := r.PhaseSeconds[k]; !ok || v < 0 {
			t.Errorf("phase %s: %v (%v)", k, v, ok)
		}
	}
	if r.PhaseSeconds["forward"] <= 0 || r.PhaseSeconds["backward"] <= 0 {
		t.Errorf("phases %v", r.PhaseSeconds)
	}
}
