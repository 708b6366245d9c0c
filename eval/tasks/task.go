package tasks

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// Kind is the harness's output_type of a task.
type Kind int

const (
	// MultipleChoice scores one request per choice (output_type
	// multiple_choice): (context, " "+choice).
	MultipleChoice Kind = iota
	// MultipleInput is multiple_choice whose doc_to_text returns an index
	// (WinoGrande's "partial evaluation"): one request per choice-specific
	// context, all with the same continuation " "+target.
	MultipleInput
	// Loglikelihood scores one (context, target) request; acc = is_greedy
	// (output_type loglikelihood, LAMBADA).
	Loglikelihood
)

// Delimiter is the harness's default target_delimiter (TaskConfig), used by
// every task here.
const Delimiter = " "

// Doc is one evaluation document after the harness's doc_to_* functions.
type Doc struct {
	Line    int      // 1-based record number in the data file
	Context string   // doc_to_text (MultipleChoice, Loglikelihood)
	Choices []string // doc_to_choice; for MultipleInput these are the contexts
	Target  string   // MultipleInput: doc_to_target; Loglikelihood: the continuation
	Gold    int      // index into Choices (0 for Loglikelihood)
}

// Requests returns the loglikelihood requests of d as ConfigurableTask.
// construct_requests builds them (lm_eval/api/task.py).
func (d Doc) Requests(k Kind) []Request {
	switch k {
	case MultipleInput:
		rs := make([]Request, len(d.Choices))
		for i, c := range d.Choices {
			rs[i] = Request{Context: c, Continuation: Delimiter + d.Target}
		}
		return rs
	case Loglikelihood:
		return []Request{{Context: d.Context, Continuation: d.Target}}
	default:
		rs := make([]Request, len(d.Choices))
		for i, c := range d.Choices {
			rs[i] = Request{Context: d.Context, Continuation: Delimiter + c}
		}
		return rs
	}
}

// Task is one harness task bound to its data file.
type Task struct {
	Name    string
	File    string // path under the tasks directory
	Split   string // the split the harness evaluates, which the file holds
	Harness string // the harness definition this mirrors
	Kind    Kind
	AccNorm bool   // the harness reports acc_norm too
	Extra   bool   // not one of the eight standard pruning-paper tasks
	Note    string // caveats every report carries
	load    func(path string) ([]Doc, error)
}

// registry holds every task. Notes state, once, where the data differ from
// what the harness would download; the loaders explain how.
var registry = []*Task{
	{Name: "boolq", File: "boolq/boolq.jsonl", Split: "validation", Harness: "super_glue/boolq/default.yaml",
		Note: "passages lack the harness's \"<Wikipedia title> -- \" prefix (absent from the data file); " +
			"\" question\" words the file had turned into \"\\nQuestion\" are restored, case inferred",
		load: loadBoolQ},
	{Name: "rte", File: "rte/dev.tsv", Split: "validation", Harness: "glue/rte/default.yaml", load: loadRTE},
	{Name: "hellaswag", File: "hellaswag/hellaswag_val_subset1000.jsonl", Split: "validation (1,000-item subset)",
		Harness: "hellaswag/hellaswag.yaml + utils.py", AccNorm: true,
		Note: "1,000-item subset of the 10,042 validation items: not comparable to full-split HellaSwag numbers",
		load: loadHellaSwag},
	{Name: "winogrande", File: "winogrande/winogrande.jsonl", Split: "validation (winogrande_xl)",
		Harness: "winogrande/default.yaml + preprocess_winogrande.py", Kind: MultipleInput, load: loadWinoGrande},
	{Name: "arc_easy", File: "arc_easy/arc_easy.jsonl", Split: "test", Harness: "arc/arc_easy.yaml", AccNorm: true,
		Note: arcNote, load: loadARC},
	{Name: "arc_challenge", File: "arc_challenge/arc_challenge.jsonl", Split: "test", Harness: "arc/arc_challenge.yaml",
		AccNorm: true, Note: arcNote, load: loadARC},
	{Name: "openbookqa", File: "openbookqa/openbook_qa.jsonl", Split: "test", Harness: "openbookqa/openbookqa.yaml",
		AccNorm: true, load: loadOpenBookQA},
	{Name: "piqa", File: "piqa/piqa.jsonl", Split: "validation", Harness: "piqa/piqa.yaml", AccNorm: true, load: loadPIQA},
	{Name: "copa", File: "copa/copa.jsonl", Split: "validation", Harness: "super_glue/copa/default.yaml + utils.py",
		Extra: true, load: loadCOPA},
	{Name: "lambada_openai", File: "lambada_openai/lambada_openai.jsonl", Split: "test", Harness: "lambada/lambada_openai.yaml",
		Kind: Loglikelihood, Extra: true, load: loadLambada},
}

// arcNote: the gauntlet file gives every question 4 choices; 11 records
// (7 easy, 4 challenge) repeat an earlier choice's text, most likely
// 3-option questions padded. A repeat scores exactly like its first copy
// and np.argmax keeps the first, and no gold index points at a repeat
// (checked), so acc and acc_norm equal the harness's on the 3 options.
// Whether the official split's few 5-option questions (if any) were cut to
// 4 cannot be told from the file.
const arcNote = "the data file pads 3-option questions to 4 choices by repeating one; a repeat scores " +
	"identically and never beats its first copy, so acc/acc_norm are unaffected"

// PaperTasks are the seven tasks whose mean accuracy the pruning papers
// tabulate (Wanda's eval_zero_shot task_list, reused by RIA and UniPruning).
var PaperTasks = []string{"boolq", "rte", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa"}

// Names lists every task, standard ones first.
func Names() []string {
	var std, extra []string
	for _, t := range registry {
		if t.Extra {
			extra = append(extra, t.Name)
		} else {
			std = append(std, t.Name)
		}
	}
	return append(std, extra...)
}

// Lookup returns the task called name.
func Lookup(name string) (*Task, error) {
	for _, t := range registry {
		if t.Name == name {
			return t, nil
		}
	}
	return nil, fmt.Errorf("unknown task %q (known: %s, or all)", name, strings.Join(Names(), ", "))
}

// Parse resolves a comma-separated task list; "all" stands for the eight
// standard tasks (the seven of the papers plus piqa). Duplicates are
// dropped; order is kept.
func Parse(list string) ([]*Task, error) {
	var out []*Task
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		var ts []*Task
		if name == "all" {
			for _, t := range registry {
				if !t.Extra {
					ts = append(ts, t)
				}
			}
		} else {
			t, err := Lookup(name)
			if err != nil {
				return nil, err
			}
			ts = []*Task{t}
		}
		for _, t := range ts {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no task named in %q", list)
	}
	return out, nil
}

// Load reads the task's documents from the tasks directory dir. Errors
// name the file and, for a malformed record, its line.
func (t *Task) Load(dir string) ([]Doc, error) {
	return t.load(t.Path(dir))
}

// Path is the task's data file under dir.
func (t *Task) Path(dir string) string { return filepath.Join(dir, filepath.FromSlash(t.File)) }
