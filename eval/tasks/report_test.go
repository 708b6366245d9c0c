package tasks

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMeanStderr: the harness's mean_stderr is sample_stddev/sqrt(n), i.e.
// sqrt(p(1-p)/(n-1)) for 0/1 values; none below two items.
func TestMeanStderr(t *testing.T) {
	m, se := meanStderr([]float64{1, 0, 1, 1})
	if m != 0.75 || se == nil || math.Abs(*se-math.Sqrt(0.75*0.25/3)) > 1e-15 {
		t.Fatalf("mean %v stderr %v", m, se)
	}
	if m, se := meanStderr([]float64{1}); m != 1 || se != nil {
		t.Fatalf("one item: mean %v stderr %v, want 1 and none", m, se)
	}
}

// TestScoreDocNormalisesByCharacters: acc_norm divides by len(choice) in
// characters (Python len), not bytes, and np.argmax keeps the first of
// equal values.
func TestScoreDocNormalisesByCharacters(t *testing.T) {
	d := Doc{Choices: []string{"éé", "abcdef"}, Gold: 1}
	it, _ := scoreDoc(d, []Result{{LogLik: -4}, {LogLik: -6}})
	// per character -2 vs -1 (by bytes it would be a tie, -1 vs -1)
	if it.Pred != 0 || it.PredNorm != 1 {
		t.Fatalf("pred %d pred_norm %d, want 0 and 1", it.Pred, it.PredNorm)
	}
	tie, _ := scoreDoc(Doc{Choices: []string{"a", "b", "a"}}, []Result{{LogLik: -1}, {LogLik: -2}, {LogLik: -1}})
	if tie.Pred != 0 || tie.PredNorm != 0 {
		t.Fatalf("tie: pred %d pred_norm %d, want the first", tie.Pred, tie.PredNorm)
	}
}

func TestParse(t *testing.T) {
	all, err := Parse("all")
	if err != nil || len(all) != 8 {
		t.Fatalf("all: %d tasks, %v", len(all), err)
	}
	for _, tk := range all {
		if tk.Extra {
			t.Errorf("all includes the extra task %s", tk.Name)
		}
	}
	ts, err := Parse(" piqa, boolq,piqa ,all")
	if err != nil || len(ts) != 8 || ts[0].Name != "piqa" || ts[1].Name != "boolq" {
		t.Fatalf("order/dedup wrong: %v %v", names(ts), err)
	}
	for _, bad := range []string{"boolq,squad", "", " , "} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := Parse("squad"); err == nil || !strings.Contains(err.Error(), `unknown task "squad"`) {
		t.Errorf("unknown task error: %v", err)
	}
}

func names(ts []*Task) []string {
	var n []string
	for _, t := range ts {
		n = append(n, t.Name)
	}
	return n
}

// TestLoadErrorsNameFileAndLine: a missing file or a malformed record is
// an error naming the file and, for a record, its line.
func TestLoadErrorsNameFileAndLine(t *testing.T) {
	dir := t.TempDir()
	arc, _ := Lookup("arc_easy")
	if _, err := arc.Load(dir); err == nil || !strings.Contains(err.Error(), "arc_easy.jsonl") {
		t.Fatalf("missing file: %v", err)
	}
	good := `{"query": "Question: Why?", "choices": ["a", "b"], "gold": 1}`
	for _, c := range []struct{ second, want string }{
		{`{"query": "Question: Why?", "choices": ["a", "b"]`, "arc_easy.jsonl:2: unexpected end"},
		{`{"query": "Question: Why?", "choices": ["a", "b"]}`, `arc_easy.jsonl:2: missing "gold"`},
		{`{"query": "Question: Why?", "choices": ["a", "b"], "gold": 2}`, "arc_easy.jsonl:2: gold 2 outside the 2 choices"},
		{`{"query": "Why?", "choices": ["a", "b"], "gold": 0}`, `arc_easy.jsonl:2: query does not start with "Question: "`},
		{``, "arc_easy.jsonl:2: empty line"},
	} {
		writeFile(t, filepath.Join(dir, arc.File), good+"\n"+c.second+"\n"+good+"\n")
		if _, err := arc.Load(dir); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("record %q: error %v, want %q", c.second, err, c.want)
		}
	}
	rte, _ := Lookup("rte")
	writeFile(t, filepath.Join(dir, rte.File), "sentence1\tsentence2\tlabel\tidx\na\tb\t2\t0\n")
	if _, err := rte.Load(dir); err == nil || !strings.Contains(err.Error(), "dev.tsv:2: label") {
		t.Errorf("bad RTE label: %v", err)
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestEvaluateReport runs a small limited evaluation end to end and checks
// what the report states.
func TestEvaluateReport(t *testing.T) {
	s := storiesScorer(t, Options{})
	ts, _ := Parse("piqa,hellaswag,lambada_openai")
	rep, err := Evaluate(s, ts, tasksDir(t), EvalOptions{Limit: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Tasks) != 3 || rep.Limit != 4 || rep.MeanMetric != "acc" || rep.PaperMean != nil {
		t.Fatalf("report: %+v", rep)
	}
	piqa, hs, lam := rep.Tasks[0], rep.Tasks[1], rep.Tasks[2]
	if piqa.N != 4 || piqa.Available != 1838 || piqa.AccNorm == nil || !strings.Contains(piqa.Note, "limited to the first 4 of 1838") {
		t.Errorf("piqa: %+v", piqa)
	}
	if !strings.Contains(hs.Note, "1,000-item subset") || len(rep.Notes) != 1 {
		t.Errorf("hellaswag subset not stated: %q %q", hs.Note, rep.Notes)
	}
	if lam.Perplexity == nil || lam.AccNorm != nil || *lam.Perplexity <= 1 {
		t.Errorf("lambada: %+v", lam)
	}
	mean := (piqa.Acc + hs.Acc + lam.Acc) / 3
	if math.Abs(rep.MeanAcc-mean) > 1e-12 {
		t.Errorf("mean %v, want %v", rep.MeanAcc, mean)
	}
	var back map[string]any
	raw, err := json.Marshal(rep)
	if err != nil || json.Unmarshal(raw, &back) != nil || back["mean_acc"] == nil {
		t.Fatalf("report does not round-trip through JSON: %v %s", err, raw)
	}
}

// TestEvaluateFailsBeforeScoring: a missing data file among the tasks is
// reported before any model work.
func TestEvaluateFailsBeforeScoring(t *testing.T) {
	s := storiesScorer(t, Options{})
	ts, _ := Parse("piqa,boolq")
	_, err := Evaluate(s, ts, t.TempDir(), EvalOptions{}, func(int, int) { t.Fatal("scoring started") })
	if err == nil || !strings.Contains(err.Error(), "piqa") {
		t.Fatalf("error %v", err)
	}
}

// TestTooLongContinuation: piqa holds solutions longer than stories260K's
// 512-token context. The harness asserts on them, so by default they stop
// the run before any scoring (naming the file and line); with SkipTooLong
// they are dropped, counted and listed.
func TestTooLongContinuation(t *testing.T) {
	s := storiesScorer(t, Options{MaxLength: 64})
	ts, _ := Parse("piqa")
	_, err := Evaluate(s, ts, tasksDir(t), EvalOptions{Limit: 40}, func(int, int) { t.Fatal("scoring started") })
	if !errors.Is(err, ErrTooLong) || !strings.Contains(err.Error(), "piqa/piqa.jsonl:") {
		t.Fatalf("error %v", err)
	}
	rep, err := Evaluate(s, ts, tasksDir(t), EvalOptions{Limit: 40, SkipTooLong: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := rep.Tasks[0]
	if tr.Skipped == 0 || tr.N+tr.Skipped != 40 || !strings.Contains(tr.Note, fmt.Sprintf("skipped, not in n: %d items", tr.Skipped)) {
		t.Fatalf("n %d skipped %d note %q", tr.N, tr.Skipped, tr.Note)
	}
}
