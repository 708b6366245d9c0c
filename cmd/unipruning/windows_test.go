package main

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/unipruning/unipruning/internal/shareddata"
)

// TestEvalWindows: --windows A:B scores exactly those windows — the NLL
// sums of 0:1 and 1:3 add up to that of the first three (--limit 3) — the
// JSON records the range, --skip N is --windows N:, and bad ranges are
// refused (2 on the command line, 1 beyond the text's windows).
func TestEvalWindows(t *testing.T) {
	m := shareddata.Path(t, "models/stories260K/stories260K.bin")
	tok := shareddata.Path(t, "models/stories260K/tok512.bin")
	txt := shareddata.Path(t, "text/tinystories/TinyStories-validation-head-794K.txt")
	type res struct {
		NLL       float64                     `json:"nll"`
		Predicted int                         `json:"predicted"`
		Windows   int                         `json:"windows"`
		Range     *struct{ From, To, Of int } `json:"window_range"`
	}
	run := func(extra ...string) res {
		t.Helper()
		args := append([]string{"eval", "--model", m, "--tokenizer", tok, "--dataset", "lines", "--text", txt, "--seqlen", "256", "--json"}, extra...)
		err, _, out := execute(t, args...)
		if err != nil {
			t.Fatalf("%v: %v", extra, err)
		}
		var r res
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b, all := run("--windows", "0:1"), run("--windows", "1:3"), run("--limit", "3")
	if a.Windows != 1 || b.Windows != 2 || all.Windows != 3 || b.Range == nil || b.Range.From != 1 || b.Range.To != 3 || b.Range.Of < 1000 {
		t.Fatalf("windows/range: %+v %+v %+v", a, b, all)
	}
	sum := a.NLL*float64(a.Predicted) + b.NLL*float64(b.Predicted)
	if want := all.NLL * float64(all.Predicted); math.Abs(sum-want) > 1e-9*want || a.Predicted+b.Predicted != all.Predicted {
		t.Fatalf("0:1 + 1:3 = %v over %d tokens, 0:3 = %v over %d", sum, a.Predicted+b.Predicted, want, all.Predicted)
	}
	last := run("--skip", "1500")
	tail := run("--windows", "1500:")
	if last.Windows != tail.Windows || last.NLL != tail.NLL || last.Range.To != last.Range.Of {
		t.Fatalf("--skip 1500 %+v, --windows 1500: %+v", last, tail)
	}
	for _, bad := range [][]string{{"--windows", "5"}, {"--windows", "3:2"}, {"--windows", "-1:2"}, {"--windows", "0:2", "--skip", "1"}, {"--windows", "0:2", "--limit", "1"}} {
		args := append([]string{"eval", "--model", m, "--tokenizer", tok, "--dataset", "lines", "--text", txt, "--seqlen", "256"}, bad...)
		if err, code, _ := execute(t, args...); code != 2 {
			t.Errorf("%v: exit %d (%v), want 2", bad, code, err)
		}
	}
	args := []string{"eval", "--model", m, "--tokenizer", tok, "--dataset", "lines", "--text", txt, "--seqlen", "256", "--windows", "0:100000"}
	if err, code, _ := execute(t, args...); code != 1 {
		t.Errorf("a range beyond the text: exit %d (%v), want 1", code, err)
	}
}
