package tasks

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Each loader rebuilds the harness's doc_to_text / doc_to_choice /
// doc_to_target from the data file's fields. Where the file's producer
// (MosaicML's eval gauntlet) pre-formatted a prompt, the harness prompt is
// recovered from it and the recovery is checked, so a record of an
// unexpected shape is an error rather than a silently different prompt.

// loadBoolQ: super_glue/boolq/default.yaml —
// doc_to_text "{{passage}}\nQuestion: {{question}}?\nAnswer:",
// doc_to_choice ["no", "yes"], doc_to_target label.
//
// The gauntlet query is "Passage: <passage>\nQuestion: <question>?", so
// the harness text is the query without "Passage: " plus "\nAnswer:",
// except for two transformations the gauntlet applied:
//   - its passages are those of google/boolq, without the "<title> -- "
//     prefix that the harness's super_glue passages carry; the title is not
//     in the file, so every boolq prompt lacks it (irreversible);
//   - every " question"/" Question" inside a passage became "\nQuestion"
//     (33 places in 22 records; no " question" is left in any passage). It
//     is turned back into " question", or " Question" after a sentence end;
//     the capital of a title mid-sentence ("Snakes in Question", line 2418)
//     cannot be recovered.
func loadBoolQ(path string) ([]Doc, error) {
	return loadMC(path, 2, func(q string) (string, error) {
		passage, ok := strings.CutPrefix(q, "Passage: ")
		k := strings.LastIndex(passage, "\nQuestion: ")
		if !ok || k < 0 || !strings.HasSuffix(q, "?") {
			return "", errors.New(`query is not "Passage: …\nQuestion: …?"`)
		}
		return restoreQuestionWords(passage[:k]) + passage[k:] + "\nAnswer:", nil
	})
}

// restoreQuestionWords undoes the gauntlet's " question" → "\nQuestion".
func restoreQuestionWords(p string) string {
	var b strings.Builder
	for {
		i := strings.Index(p, "\nQuestion")
		if i < 0 {
			b.WriteString(p)
			return b.String()
		}
		b.WriteString(p[:i])
		if endsSentence(p[:i]) {
			b.WriteString(" Question")
		} else {
			b.WriteString(" question")
		}
		p = p[i+len("\nQuestion"):]
	}
}

// endsSentence reports whether s ends with . ! or ?, possibly followed by
// closing quotes or brackets.
func endsSentence(s string) bool {
	s = strings.TrimRight(s, "'\"`’”)")
	return strings.HasSuffix(s, ".") || strings.HasSuffix(s, "!") || strings.HasSuffix(s, "?")
}

// loadRTE: glue/rte/default.yaml —
// doc_to_text "{{sentence1}}\nQuestion: {{sentence2}} True or False?\nAnswer:",
// doc_to_choice ["True", "False"], doc_to_target label (0 = entailment).
// The file is the GLUE validation split as HF datasets exports it: a TSV
// with header sentence1, sentence2, label, idx and CSV quoting.
func loadRTE(path string) ([]Doc, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("task data: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comma, r.FieldsPerRecord = '\t', 4
	head, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: header: %v", path, err)
	}
	if !slices.Equal(head, []string{"sentence1", "sentence2", "label", "idx"}) {
		return nil, fmt.Errorf("%s: header %q, want sentence1, sentence2, label, idx", path, head)
	}
	var docs []Doc
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		line, _ := r.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err) // csv errors carry the line
		}
		label, err := strconv.Atoi(rec[2])
		if err != nil || label < 0 || label > 1 {
			return nil, fmt.Errorf("%s:%d: label %q is not 0 or 1", path, line, rec[2])
		}
		docs = append(docs, Doc{Line: line,
			Context: rec[0] + "\nQuestion: " + rec[1] + " True or False?\nAnswer:",
			Choices: []string{"True", "False"}, Gold: label})
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("%s: no records", path)
	}
	return docs, nil
}

// hellaswagRecord is the original hellaswag_val.jsonl record (only the
// fields the harness reads).
type hellaswagRecord struct {
	ActivityLabel *string         `json:"activity_label"`
	CtxA          *string         `json:"ctx_a"`
	CtxB          *string         `json:"ctx_b"`
	Endings       []string        `json:"endings"`
	Label         json.RawMessage `json:"label"`
}

// loadHellaSwag: hellaswag/hellaswag.yaml + utils.py process_docs —
// query = preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()),
// choices = [preprocess(e) for e in endings], gold = int(label).
// The file has the original fields, so this is exact.
func loadHellaSwag(path string) ([]Doc, error) {
	return readJSONL(path, func(r *hellaswagRecord) (Doc, error) {
		if r.ActivityLabel == nil || r.CtxA == nil || r.CtxB == nil {
			return Doc{}, errors.New(`missing "activity_label", "ctx_a" or "ctx_b"`)
		}
		if len(r.Endings) != 4 {
			return Doc{}, fmt.Errorf("%d endings, want 4", len(r.Endings))
		}
		gold, err := intLabel(r.Label, len(r.Endings))
		if err != nil {
			return Doc{}, err
		}
		ctx := *r.CtxA + " " + pyCapitalize(*r.CtxB)
		d := Doc{Context: hellaswagPreprocess(*r.ActivityLabel + ": " + ctx), Gold: gold}
		for _, e := range r.Endings {
			d.Choices = append(d.Choices, hellaswagPreprocess(e))
		}
		return d, nil
	})
}

// intLabel reads a label given as a JSON number or a numeric string (the
// HF datasets copy of HellaSwag stores "3") and checks it indexes n choices.
func intLabel(raw json.RawMessage, n int) (int, error) {
	if len(raw) == 0 {
		return 0, errors.New(`missing "label"`)
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		s = string(raw)
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 || v >= n {
		return 0, fmt.Errorf("label %s is not an index into %d choices", raw, n)
	}
	return v, nil
}
