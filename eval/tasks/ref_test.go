package tasks

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/unipruning/unipruning/internal/shareddata"
)

// refFile is written by tools/zeroshot/score_ref.py (see testdata/README.md):
// an independent PyTorch/float64 implementation of the harness protocol.
type refFile struct {
	ModelSHA256     string `json:"model_sha256"`
	TokenizerSHA256 string `json:"tokenizer_sha256"`
	MaxLength       int    `json:"max_length"`
	Tasks           map[string]struct {
		SHA256 string    `json:"sha256"`
		Items  []refItem `json:"items"`
	} `json:"tasks"`
	Probes []struct {
		Context, Continuation string
		LogLik                float64 `json:"loglik"`
		Greedy                bool    `json:"is_greedy"`
		ContTokens            int     `json:"cont_tokens"`
		Truncated             int     `json:"truncated"`
	} `json:"probes"`
}

type refItem struct {
	Line       int      `json:"line"`
	Requests   []string `json:"requests_sha256"`
	LogLiks    []float64
	Greedy     []bool `json:"is_greedy"`
	ContTokens []int  `json:"cont_tokens"`
	Truncated  []int
	Gold       int
	Pred       int
	PredNorm   int `json:"pred_norm"`
}

// refTolerance is the agreement asked of log-likelihoods: the reference
// runs in float64, the engine in float32.
const refTolerance = 1e-4

func readRef(t *testing.T) *refFile {
	t.Helper()
	raw, err := os.ReadFile("testdata/ref_scores.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref refFile
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{
		"models/stories260K/stories260K.bin": ref.ModelSHA256,
		"models/stories260K/tok512.bin":      ref.TokenizerSHA256} {
		if got := fileSHA(t, shareddata.Path(t, rel)); got != want {
			t.Fatalf("%s has sha256 %s, the reference was made with %s", rel, got, want)
		}
	}
	return &ref
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(raw)
	return hex.EncodeToString(s[:])
}

// TestMatchesReference: for every document of the reference, the Go
// requests are byte-identical to the ones the Python script built from the
// harness definitions (compared by sha256), and the scorer gives the same
// log-likelihoods (to 1e-4), greedy flags, token counts, truncation and
// the same acc / acc_norm choices.
func TestMatchesReference(t *testing.T) {
	ref := readRef(t)
	s := storiesScorer(t, Options{})
	if s.MaxLength() != ref.MaxLength {
		t.Fatalf("max length %d, reference %d", s.MaxLength(), ref.MaxLength)
	}
	for name, rt := range ref.Tasks {
		t.Run(name, func(t *testing.T) {
			tk, docs := loadDocs(t, name)
			if got := fileSHA(t, tk.Path(tasksDir(t))); got != rt.SHA256 {
				t.Fatalf("data file sha256 %s, reference %s", got, rt.SHA256)
			}
			var reqs []Request
			for i, it := range rt.Items {
				d := docs[i]
				if d.Line != it.Line {
					t.Fatalf("document %d is line %d, reference line %d", i, d.Line, it.Line)
				}
				rs := d.Requests(tk.Kind)
				checkDigests(t, d.Line, rs, it.Requests)
				reqs = append(reqs, rs...)
			}
			res, err := s.Score(reqs, nil)
			if err != nil {
				t.Fatal(err)
			}
			compareItems(t, docs, res, rt.Items)
		})
	}
}

func checkDigests(t *testing.T, line int, rs []Request, want []string) {
	t.Helper()
	if len(rs) != len(want) {
		t.Fatalf("line %d: %d requests, reference %d", line, len(rs), len(want))
	}
	for j, r := range rs {
		sum := sha256.Sum256([]byte(r.Context + "\x00" + r.Continuation))
		if hex.EncodeToString(sum[:]) != want[j] {
			t.Errorf("line %d choice %d: request differs from the reference's: %q + %q", line, j, r.Context, r.Continuation)
		}
	}
}

func compareItems(t *testing.T, docs []Doc, res []Result, items []refItem) {
	t.Helper()
	k, worst := 0, 0.0
	for i, it := range items {
		n := len(it.LogLiks)
		got, _ := scoreDoc(docs[i], res[k:k+n])
		for j := range n {
			r := res[k+j]
			worst = math.Max(worst, math.Abs(r.LogLik-it.LogLiks[j]))
			if math.Abs(r.LogLik-it.LogLiks[j]) > refTolerance || r.Greedy != it.Greedy[j] ||
				r.ContTokens != it.ContTokens[j] || r.Truncated != it.Truncated[j] {
				t.Errorf("line %d choice %d: got %+v, reference loglik %.8f greedy %v tokens %d truncated %d",
					it.Line, j, r, it.LogLiks[j], it.Greedy[j], it.ContTokens[j], it.Truncated[j])
			}
		}
		if got.Pred != it.Pred || got.PredNorm != it.PredNorm || got.Gold != it.Gold {
			t.Errorf("line %d: pred/pred_norm/gold %d/%d/%d, reference %d/%d/%d",
				it.Line, got.Pred, got.PredNorm, got.Gold, it.Pred, it.PredNorm, it.Gold)
		}
		k += n
	}
	t.Logf("%d documents, %d requests, largest |Δ loglik| %.2e", len(items), k, worst)
}

// TestProbesMatchReference covers what the task data rarely reach:
// greedy continuations, trailing whitespace in the context, an empty
// context and left truncation with a long continuation.
func TestProbesMatchReference(t *testing.T) {
	ref := readRef(t)
	s := storiesScorer(t, Options{})
	var reqs []Request
	for _, p := range ref.Probes {
		reqs = append(reqs, Request{p.Context, p.Continuation})
	}
	res, err := s.Score(reqs, nil)
	if err != nil {
		t.Fatal(err)
	}
	greedy, trunc := 0, 0
	for i, p := range ref.Probes {
		r := res[i]
		if math.Abs(r.LogLik-p.LogLik) > refTolerance || r.Greedy != p.Greedy || r.ContTokens != p.ContTokens || r.Truncated != p.Truncated {
			t.Errorf("probe %d (%.30q + %.30q): got %+v, reference %+v", i, p.Context, p.Continuation, r, p)
		}
		if p.Greedy {
			greedy++
		}
		if p.Truncated > 0 {
			trunc++
		}
	}
	if greedy == 0 || trunc == 0 {
		t.Fatalf("the probes must include greedy (%d) and truncated (%d) cases", greedy, trunc)
	}
}
