package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unipruning/unipruning/consensus"
	"github.com/unipruning/unipruning/job"
)

// TestSearchInvalidInputFailsFast (issue 12 class 1): a missing or empty
// calibration file, an unknown format, seqlen over the context or steps 0
// fail before anything runs, as invalid input (exit status 2), and leave
// no run directory.
func TestSearchInvalidInputFailsFast(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty.txt")
	os.WriteFile(empty, nil, 0o644)
	cases := map[string]func(*job.Spec){
		"missing calib": func(s *job.Spec) { s.CalibPath = filepath.Join(t.TempDir(), "nope.txt") },
		"empty calib":   func(s *job.Spec) { s.CalibPath = empty },
		"format xml":    func(s *job.Spec) { s.CalibFormat = "xml" },
		"seqlen":        func(s *job.Spec) { s.Seqlen = 4096 },
		"steps 0":       func(s *job.Spec) { s.Steps = 0 },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			spec := smallSpec(t, job.ModeGlobal)
			edit(&spec)
			out := filepath.Join(t.TempDir(), "run")
			_, err := runSearch(context.Background(), searchFlags{spec: spec, out: out, shards: 1})
			if err == nil {
				t.Fatal("accepted")
			}
			if code := exitCode(err); code != exitUsage {
				t.Fatalf("exit status %d for %v, want %d", code, err, exitUsage)
			}
			if _, serr := os.Stat(out); !os.IsNotExist(serr) {
				t.Fatalf("run directory left behind: %v", serr)
			}
			// The embedded cluster (`run`) refuses it the same way, at once.
			err = runEmbeddedCluster(context.Background(), searchFlags{spec: spec, out: out, shards: 1})
			if err == nil || exitCode(err) != exitUsage {
				t.Fatalf("run: %v", err)
			}
		})
	}
}

// TestFailedSearchLeavesNoRunDir (class 7): a search that fails after it
// created its run directory removes it, so the same command can run again.
func TestFailedSearchLeavesNoRunDir(t *testing.T) {
	spec := smallSpec(t, job.ModeGlobal)
	spec.Steps = 3
	out := filepath.Join(t.TempDir(), "run")
	// A failure inside the run: the ledger cannot be read.
	afterRunDir = func(dir string) { os.Mkdir(filepath.Join(dir, "ledger.json"), 0o755) }
	defer func() { afterRunDir = nil }()
	if _, err := runSearch(context.Background(), searchFlags{spec: spec, out: out, shards: 1}); err == nil {
		t.Fatal("search with an unreadable ledger succeeded")
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("failed search left %s: %v", out, err)
	}
	afterRunDir = nil
	if _, err := runSearch(context.Background(), searchFlags{spec: spec, out: out, shards: 1}); err != nil {
		t.Fatalf("rerun after a failure: %v", err)
	}
}

// TestResumeRefusesDifferentFlags (class 7): --resume with a flag whose
// value differs from the run's refuses, naming it; the same values or no
// flags resume.
func TestResumeRefusesDifferentFlags(t *testing.T) {
	spec := smallSpec(t, job.ModeGlobal)
	out := search(t, spec, 1)
	os.Remove(filepath.Join(out, "gamma.json"))
	other := spec
	other.LR = 0.01
	changed := func(name string) bool { return name == "lr" }
	_, err := runSearch(context.Background(), searchFlags{spec: other, out: out, shards: 1, resume: true, changed: changed})
	if err == nil || !strings.Contains(err.Error(), "--lr 0.01 differs from the run's 0.0001") || !isUsage(err) {
		t.Fatalf("resume with another --lr: %v", err)
	}
	var none job.Spec
	if _, err := runSearch(context.Background(), searchFlags{spec: none, out: out, shards: 2, resume: true, changed: func(string) bool { return false }}); err != nil {
		t.Fatalf("resume with no spec flags: %v", err)
	}
}

// TestResumeLRAuto: on --resume, --lr auto means the rate the run chose
// (its spec's, no new probes); a run started at a fixed rate refuses an
// explicit --lr auto, and takes the default auto of `run` as its own rate.
func TestResumeLRAuto(t *testing.T) {
	spec := smallSpec(t, job.ModeGlobal)
	out := t.TempDir()
	if err := writeJSONFile(filepath.Join(out, "spec.json"), spec); err != nil {
		t.Fatal(err)
	}
	var none job.Spec
	lrGiven := func(name string) bool { return name == "lr" }
	f := searchFlags{spec: none, out: out, resume: true, lrAuto: true, changed: lrGiven}
	if _, err := searchSpec(&f); err == nil || !isUsage(err) || !strings.Contains(err.Error(), "fixed --lr") {
		t.Fatalf("explicit --lr auto on a fixed-rate run: %v", err)
	}
	f = searchFlags{spec: none, out: out, resume: true, lrAuto: true, changed: func(string) bool { return false }}
	got, err := searchSpec(&f)
	if err != nil || got.LR != spec.LR || f.lrAuto {
		t.Fatalf("default auto on a fixed-rate run: lr %v, still auto %v, %v", got.LR, f.lrAuto, err)
	}
	if err := writeLRChoice(out, &lrChoice{LR: spec.LR}); err != nil {
		t.Fatal(err)
	}
	f = searchFlags{spec: none, out: out, resume: true, lrAuto: true, changed: lrGiven}
	got, err = searchSpec(&f)
	if err != nil || got.LR != spec.LR || f.lrAuto {
		t.Fatalf("--lr auto on an auto run: lr %v, still auto %v, %v", got.LR, f.lrAuto, err)
	}
}

// TestRunResumeRetriesFailedJob: `run --resume` of a run whose job failed
// (terminal in its Raft log) is the user's retry: it reopens the job and
// finishes it instead of reporting the old failure again.
func TestRunResumeRetriesFailedJob(t *testing.T) {
	spec := smallSpec(t, job.ModeGlobal)
	spec.Steps, spec.CheckpointEvery = 4, 2
	spec, err := resolveSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "search")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeJSONFile(filepath.Join(out, "spec.json"), spec); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	node, err := consensus.Open(consensus.Config{NodeID: "c1", BindAddr: "127.0.0.1:0", DataDir: filepath.Join(out, "raft"), Bootstrap: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := node.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	jb := job.Job{ID: "run-" + spec.Hash()[:12], Spec: spec, Shards: 1}
	b, _ := json.Marshal(jb)
	for _, c := range []func() (consensus.Command, error){
		func() (consensus.Command, error) {
			return consensus.NewSubmitJob("submit/"+jb.ID, consensus.JobSpec{ID: jb.ID, Version: 1, Spec: b})
		},
		func() (consensus.Command, error) { return consensus.NewFailed("f", "injected: disk full", "transient") },
	} {
		cmd, err := c()
		if err == nil {
			_, err = node.Apply(ctx, cmd)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	node.Shutdown()
	if err := runEmbeddedCluster(ctx, searchFlags{out: out, shards: 1, resume: true, changed: func(string) bool { return false }}); err != nil {
		t.Fatalf("run --resume of a failed run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "gamma.json")); err != nil {
		t.Fatal(err)
	}
}

// TestCheckJob: a cluster job is checked like a search, plus its split
// over the shards (more shards than layers is invalid input).
func TestCheckJob(t *testing.T) {
	spec := smallSpec(t, job.ModeGlobal)
	spec.Defaults()
	if err := checkJob(&job.Job{ID: "j", Spec: spec, Shards: 2}); err != nil {
		t.Fatal(err)
	}
	err := checkJob(&job.Job{ID: "j", Spec: spec, Shards: 99})
	if err == nil || job.ClassOf(err) != job.InvalidInput || !strings.Contains(err.Error(), "shards") {
		t.Fatalf("99 shards: %v", err)
	}
}
