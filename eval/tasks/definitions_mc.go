package tasks

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// loadARC: arc/arc_easy.yaml (arc_challenge.yaml includes it) —
// doc_to_text "Question: {{question}}\nAnswer:", doc_to_choice
// {{choices.text}}, doc_to_target choices.label.index(answerKey).
// The gauntlet query is "Question: <question>", choices and gold as is.
func loadARC(path string) ([]Doc, error) {
	return loadMC(path, 0, func(q string) (string, error) {
		if !strings.HasPrefix(q, "Question: ") {
			return "", errors.New(`query does not start with "Question: "`)
		}
		return q + "\nAnswer:", nil
	})
}

// loadOpenBookQA: openbookqa/openbookqa.yaml — doc_to_text question_stem
// (the bare stem, no "Question:"), doc_to_choice {{choices.text}}. The
// gauntlet query is the stem.
func loadOpenBookQA(path string) ([]Doc, error) {
	return loadMC(path, 4, func(q string) (string, error) { return q, nil })
}

// loadPIQA: piqa/piqa.yaml — doc_to_text "Question: {{goal}}\nAnswer:",
// doc_to_choice [sol1, sol2], doc_to_target label. The gauntlet query is
// "Question: <goal>\n", so the harness text is the query plus "Answer:".
func loadPIQA(path string) ([]Doc, error) {
	return loadMC(path, 2, func(q string) (string, error) {
		if !strings.HasPrefix(q, "Question: ") || !strings.HasSuffix(q, "\n") {
			return "", errors.New(`query is not "Question: <goal>\n"`)
		}
		return q + "Answer:", nil
	})
}

// loadCOPA: super_glue/copa/default.yaml + utils.py — doc_to_text
// premise.strip()[:-1] + " because"|" therefore", doc_to_choice
// [" " + convert_choice(choice1), " " + convert_choice(choice2)] with
// convert_choice lower-casing the first character. The gauntlet query is
// the harness text already and its choices are converted; the harness's
// leading " " is added here, so a continuation is "  <choice>" (delimiter
// plus that space) exactly as the harness sends it.
func loadCOPA(path string) ([]Doc, error) {
	docs, err := loadMC(path, 2, func(q string) (string, error) {
		if !strings.HasSuffix(q, " because") && !strings.HasSuffix(q, " therefore") {
			return "", errors.New(`query does not end with " because" or " therefore"`)
		}
		return q, nil
	})
	for i := range docs {
		for j, c := range docs[i].Choices {
			docs[i].Choices[j] = " " + lowerFirst(c)
		}
	}
	return docs, err
}

func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToLower(r)) + s[n:]
}

type winograndeRecord struct {
	ContextOptions []string `json:"context_options"`
	Continuation   *string  `json:"continuation"`
	Gold           *int     `json:"gold"`
}

// loadWinoGrande: winogrande/default.yaml + preprocess_winogrande.py —
// doc_to_choice [sentence[:i] + option for both options] (i = index of "_"),
// doc_to_target sentence[i+1:].strip(), doc_to_text = the answer index, which
// makes it a multiple-input task: each option's context is scored with the
// shared continuation " " + target. The gauntlet stores exactly those
// contexts ("context_options") and the target ("continuation").
func loadWinoGrande(path string) ([]Doc, error) {
	return readJSONL(path, func(r *winograndeRecord) (Doc, error) {
		switch {
		case len(r.ContextOptions) != 2:
			return Doc{}, fmt.Errorf("%d context_options, want 2", len(r.ContextOptions))
		case r.Continuation == nil || r.Gold == nil:
			return Doc{}, errors.New(`missing "continuation" or "gold"`)
		case *r.Gold < 0 || *r.Gold > 1:
			return Doc{}, fmt.Errorf("gold %d is not 0 or 1", *r.Gold)
		case r.ContextOptions[0] == "" || r.ContextOptions[1] == "":
			return Doc{}, errors.New("empty context option")
		}
		return Doc{Choices: r.ContextOptions, Target: pyStrip(*r.Continuation), Gold: *r.Gold}, nil
	})
}

type lambadaRecord struct {
	Context      *string `json:"context"`
	Continuation *string `json:"continuation"`
}

// loadLambada: lambada/lambada_openai.yaml — output_type loglikelihood,
// doc_to_text text.split(' ')[:-1] joined by ' ', doc_to_target
// ' ' + text.split(' ')[-1]. The gauntlet splits the text the same way
// (its "continuation" never holds a ' '; checked), so the request is
// (context, " " + continuation).
func loadLambada(path string) ([]Doc, error) {
	return readJSONL(path, func(r *lambadaRecord) (Doc, error) {
		if r.Context == nil || r.Continuation == nil || *r.Continuation == "" {
			return Doc{}, errors.New(`missing "context" or "continuation"`)
		}
		if strings.Contains(*r.Continuation, " ") {
			return Doc{}, fmt.Errorf("continuation %q holds a space: not the last ' '-separated word", *r.Continuation)
		}
		return Doc{Context: *r.Context, Choices: []string{*r.Continuation}, Target: " " + *r.Continuation}, nil
	})
}
