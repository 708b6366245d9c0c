package tasks

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/unipruning/unipruning/internal/shareddata"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/model/tokenizer"
	"github.com/unipruning/unipruning/nn"
)

// stories260K is loaded once per test binary: several tests score with it.
var stories struct {
	once sync.Once
	w    *nn.Weights[float32]
	tok  tokenizer.Tokenizer
	err  error
}

// storiesModel returns the real stories260K weights and tokenizer (skips
// when the shared data is absent, fails under $CI).
func storiesModel(t *testing.T) (*nn.Weights[float32], tokenizer.Tokenizer) {
	t.Helper()
	bin := shareddata.Path(t, "models/stories260K/stories260K.bin")
	tokPath := shareddata.Path(t, "models/stories260K/tok512.bin")
	stories.once.Do(func() {
		ck, err := model.Open(bin, tokPath)
		if err != nil {
			stories.err = err
			return
		}
		defer ck.Close()
		if stories.tok, err = ck.LoadTokenizer(); err != nil {
			stories.err = err
			return
		}
		stories.w, stories.err = nn.Load[float32](ck, nn.Whole(ck.Config))
	})
	if stories.err != nil {
		t.Fatal(stories.err)
	}
	return stories.w, stories.tok
}

// storiesScorer is a fresh scorer on stories260K (a Stage is not shared).
func storiesScorer(t *testing.T, o Options) *Scorer {
	t.Helper()
	w, tok := storiesModel(t)
	s, err := NewScorer(w, tok, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tasksDir is the shared tasks directory, located through one of its files.
func tasksDir(t *testing.T) string {
	t.Helper()
	return filepath.Dir(filepath.Dir(shareddata.Path(t, "tasks/arc_easy/arc_easy.jsonl")))
}

// loadDocs reads a task's documents from the shared data.
func loadDocs(t *testing.T, name string) (*Task, []Doc) {
	t.Helper()
	tk, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	shareddata.Path(t, "tasks/"+tk.File)
	docs, err := tk.Load(tasksDir(t))
	if err != nil {
		t.Fatal(err)
	}
	return tk, docs
}
