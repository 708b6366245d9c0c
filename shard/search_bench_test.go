package shard_test

import (
	"os"
	"strconv"
	"testing"

	"github.com/unipruning/unipruning/internal/sysmem"
	"github.com/unipruning/unipruning/job"
)

// BenchmarkSearchModel runs a one-process search on the model named by
// $UNIPRUNING_BENCH_MODEL (an HF directory made by `unipruning synth
// --with-data`, whose calib.txt is the calibration text), for profiling the
// search step on a model of real size (`make bench-search` runs the whole
// command instead). $UNIPRUNING_BENCH_SEQLEN (default 256) and
// $UNIPRUNING_BENCH_STEPS (default 4) set the window and the steps.
func BenchmarkSearchModel(b *testing.B) {
	dir := os.Getenv("UNIPRUNING_BENCH_MODEL")
	if dir == "" {
		b.Skip("set UNIPRUNING_BENCH_MODEL to a synth --with-data model directory")
	}
	spec := job.Spec{Model: dir, CalibPath: dir + "/calib.txt", CalibFormat: "lines",
		Mode: job.ModeGlobal, Seqlen: envInt("UNIPRUNING_BENCH_SEQLEN", 256), Steps: envInt("UNIPRUNING_BENCH_STEPS", 4)}
	spec.Defaults()
	spec.CheckpointEvery = 0
	blobs, _ := newBlobs(b)
	benchDriver(b, spec, localShards(b, storiesParts(b, spec, 1), blobs))
	if rss, err := sysmem.PeakRSS(); err == nil {
		b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
