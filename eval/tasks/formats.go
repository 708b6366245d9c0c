package tasks

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// readJSONL decodes each line of path into a fresh R and converts it with
// conv. Every error names the file and the 1-based line, so a malformed
// record is found at once; nothing is skipped silently.
func readJSONL[R any](path string, conv func(r *R) (Doc, error)) ([]Doc, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("task data: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var docs []Doc
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			return nil, fmt.Errorf("%s:%d: empty line (one JSON record per line expected)", path, line)
		}
		var rec R
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, line, err)
		}
		d, err := conv(&rec)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, line, err)
		}
		d.Line = line
		docs = append(docs, d)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("%s: no records", path)
	}
	return docs, nil
}

// mcRecord is the MosaicML eval-gauntlet multiple-choice record. Pointer
// fields tell a missing field from a zero value: a missing "gold" must be
// an error, not answer 0.
type mcRecord struct {
	Query   *string  `json:"query"`
	Choices []string `json:"choices"`
	Gold    *int     `json:"gold"`
}

// check validates the record; want > 0 demands exactly that many choices.
func (r *mcRecord) check(want int) error {
	switch {
	case r.Query == nil:
		return errors.New(`missing "query"`)
	case r.Gold == nil:
		return errors.New(`missing "gold"`)
	case len(r.Choices) < 2 || (want > 0 && len(r.Choices) != want):
		return fmt.Errorf("%d choices, want %s", len(r.Choices), wantChoices(want))
	case *r.Gold < 0 || *r.Gold >= len(r.Choices):
		return fmt.Errorf("gold %d outside the %d choices", *r.Gold, len(r.Choices))
	}
	for i, c := range r.Choices {
		if c == "" {
			return fmt.Errorf("choice %d is empty", i)
		}
	}
	return nil
}

func wantChoices(n int) string {
	if n > 0 {
		return fmt.Sprint(n)
	}
	return "at least 2"
}

// loadMC reads gauntlet multiple-choice JSONL; prompt maps the record's
// query to the harness's doc_to_text.
func loadMC(path string, want int, prompt func(q string) (string, error)) ([]Doc, error) {
	return readJSONL(path, func(r *mcRecord) (Doc, error) {
		if err := r.check(want); err != nil {
			return Doc{}, err
		}
		ctx, err := prompt(*r.Query)
		if err != nil {
			return Doc{}, err
		}
		return Doc{Context: ctx, Choices: r.Choices, Gold: *r.Gold}, nil
	})
}
