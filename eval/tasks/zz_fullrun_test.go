package tasks

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"
)

func TestZZFullRun(t *testing.T) {
	if os.Getenv("ZS_FULL") == "" {
		t.Skip()
	}
	s := storiesScorer(t, Options{})
	ts, _ := Parse(os.Getenv("ZS_FULL"))
	start := time.Now()
	rep, err := Evaluate(s, ts, tasksDir(t), EvalOptions{SkipTooLong: true}, func(d, n int) {
		if d%5000 < 20 {
			fmt.Fprintf(os.Stderr, "%d/%d %v\n", d, n, time.Since(start))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.MarshalIndent(rep, "", " ")
	os.WriteFile("/tmp/zs/full_report.json", raw, 0o644)
	for _, tr := range rep.Tasks {
		fmt.Printf("%-15s n=%5d acc=%.4f±%.4f norm=%v trunc=%d skip=%d %.0fs\n", tr.Name, tr.N, tr.Acc, *tr.AccStderr, tr.AccNorm, tr.TruncatedDocs, tr.Skipped, tr.Seconds)
	}
	fmt.Printf("mean %.4f paper7 %v total %.0fs\n", rep.MeanAcc, *rep.PaperMean, rep.Seconds)
}
