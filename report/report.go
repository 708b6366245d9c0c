// Package report defines the JSON report written beside every pruned
// output (report.json) and the charts drawn from it.
package report

import (
	"encoding/json"
	"os"

	"github.com/unipruning/unipruning/eval"
	"github.com/unipruning/unipruning/eval/tasks"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/provenance"
)

// Matrix is the outcome for one target matrix.
type Matrix struct {
	Name     string  `json:"name"`
	Layer    int     `json:"layer"`
	Out      int     `json:"out"`
	In       int     `json:"in"`
	Kept     int     `json:"kept"`
	Sparsity float64 `json:"sparsity"`
	Dense    bool    `json:"dense,omitempty"`
	Reason   string  `json:"reason,omitempty"`
}

// Eval is one perplexity measurement.
type Eval struct {
	Model     string         `json:"model"` // "dense" or "pruned"
	Manifest  *eval.Manifest `json:"manifest"`
	PPL       float64        `json:"ppl"`
	NLL       float64        `json:"nll"`
	Predicted int            `json:"predicted"`
	Seconds   float64        `json:"seconds"`
}

// Report is report.json.
type Report struct {
	Tool        string         `json:"tool"`
	Command     string         `json:"command"`
	Model       string         `json:"model"`
	Format      string         `json:"format"`
	Tokenizer   string         `json:"tokenizer"`
	Method      string         `json:"method"`
	Sparsity    *float64       `json:"sparsity,omitempty"`
	Pattern     string         `json:"pattern,omitempty"`
	Group       string         `json:"group,omitempty"`
	Allocation  string         `json:"allocation,omitempty"`
	Calibration *eval.Manifest `json:"calibration,omitempty"`
	Settings    map[string]any `json:"settings,omitempty"`
	Matrices    []Matrix       `json:"matrices"`
	Targets     int            `json:"target_params"`
	Kept        int            `json:"kept_params"`
	Total       float64        `json:"total_sparsity"`
	Dense       []string       `json:"dense_matrices,omitempty"`
	// Storage: how an HF output stores its weights (dense or
	// compressed-tensors' sparse formats) and their size against dense.
	Storage *model.Storage `json:"storage,omitempty"`
	Evals   []Eval         `json:"evals,omitempty"`
	// ZeroShot holds lm-evaluation-harness task accuracy by model
	// ("dense", "pruned") when --tasks was given.
	ZeroShot map[string]*tasks.Report `json:"zero_shot,omitempty"`
	Seconds  map[string]float64       `json:"seconds"`
	Machine  provenance.Machine       `json:"machine"`
}

// Summarize fills the totals from the per-matrix entries.
func (r *Report) Summarize() {
	r.Targets, r.Kept, r.Dense = 0, 0, nil
	for _, m := range r.Matrices {
		r.Targets += m.Out * m.In
		r.Kept += m.Kept
		if m.Dense {
			r.Dense = append(r.Dense, m.Name)
		}
	}
	if r.Targets > 0 {
		r.Total = 1 - float64(r.Kept)/float64(r.Targets)
	}
}

// LayerSparsity is the sparsity of each decoder layer's targets.
func (r *Report) LayerSparsity() []float64 {
	var kept, all []int
	for _, m := range r.Matrices {
		for len(all) <= m.Layer {
			all, kept = append(all, 0), append(kept, 0)
		}
		all[m.Layer] += m.Out * m.In
		kept[m.Layer] += m.Kept
	}
	s := make([]float64, len(all))
	for i := range all {
		if all[i] > 0 {
			s[i] = 1 - float64(kept[i])/float64(all[i])
		}
	}
	return s
}

// Write saves the report as indented JSON.
func (r *Report) Write(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Read loads a report.
func Read(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	return &r, json.Unmarshal(b, &r)
}
