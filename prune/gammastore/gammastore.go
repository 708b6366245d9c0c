// Package gammastore is the output of a UniPruning search: the final Γ and
// first-step of every target matrix (in one compressed, checksummed part
// per shard) plus a manifest with the search settings, the calibration
// data's identity and a fingerprint of the model. Extraction reads it to
// make masks for any sparsity without re-running the search.
package gammastore

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/unipruning/unipruning/internal/atomicfile"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/provenance"
	"github.com/unipruning/unipruning/prune/statefile"
)

// Format identifies the manifest layout.
const Format = "unipruning-gamma/1"

// ManifestName is the manifest's file name inside a run directory.
const ManifestName = "gamma.json"

// Part is one shard's Γ file.
type Part struct {
	File   string `json:"file"`
	From   int    `json:"from"`
	To     int    `json:"to"`
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
}

// ModelID identifies the model a Γ belongs to.
type ModelID struct {
	Path        string        `json:"path"`
	Format      string        `json:"format"`
	Config      *model.Config `json:"config"`
	Fingerprint string        `json:"fingerprint"`
}

// StepRecord is one search step's facts, labelled with the step.
type StepRecord struct {
	Step int `json:"step"`
	job.StepFacts
}

// Manifest is gamma.json.
type Manifest struct {
	Format      string             `json:"format"`
	Spec        json.RawMessage    `json:"spec"`
	SpecHash    string             `json:"spec_hash"`
	Model       ModelID            `json:"model"`
	Calibration *provenance.Data   `json:"calibration,omitempty"`
	Parts       []Part             `json:"parts"`
	Steps       []StepRecord       `json:"steps"`
	Resumed     int                `json:"resumed_from,omitempty"`
	Seconds     float64            `json:"seconds"`
	Machine     provenance.Machine `json:"machine"`
	Resources   *Resources         `json:"resources,omitempty"`
}

// Resources is what a search cost, where the command that ran it knows:
// seconds per step by phase, each shard's peak RSS and what the memory
// plan predicted for it. It describes the run, not Γ.
type Resources struct {
	PhaseSeconds map[string]float64 `json:"phase_seconds_per_step,omitempty"`
	PeakRSS      []uint64           `json:"peak_rss_bytes,omitempty"`
	PlannedBytes []int64            `json:"planned_bytes,omitempty"`
}

// Fingerprint identifies a model's target weights cheaply: sha256 over the
// config, every target's name and shape, and 1024 of its values spread
// evenly over the tensor (so a permutation of rows, as between llama2.c and
// HF q/k layouts, changes it). A Γ store is only applied to the model it
// was searched on.
func Fingerprint(ck *model.Checkpoint) (string, error) {
	h := sha256.New()
	c := *ck.Config
	c.DType = "" // a dtype conversion is the same model
	cj, _ := json.Marshal(struct {
		D, H, L, N, KV, V int
	}{c.Dim, c.Hidden, c.Layers, c.Heads, c.KVHeads, c.Vocab})
	h.Write(cj)
	var buf [4]byte
	for _, t := range model.Targets(ck.Config) {
		v, err := ck.Read(t.TensorName())
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s:%d;", t.TensorName(), len(v))
		for _, x := range spread(v, 1024) {
			binary.LittleEndian.PutUint32(buf[:], math.Float32bits(x))
			h.Write(buf[:])
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeAtomic writes a file of the store so that a crash leaves the whole
// file or none of it (the manifest is written last, after every part).
func writeAtomic(path string, b []byte) error {
	return atomicfile.WriteFile(path, b, 0o644)
}

// Store is a loaded Γ store.
type Store struct {
	Manifest
	Dir   string
	Gamma map[string][]float32 // target tensor name → Γ
	First map[string][]int32
}

// Open loads and verifies a run directory's Γ store.
func Open(dir string) (*Store, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return nil, fmt.Errorf("Γ store %s: %w (is it a search run directory?)", dir, err)
	}
	s := &Store{Dir: dir, Gamma: map[string][]float32{}, First: map[string][]int32{}}
	if err := json.Unmarshal(b, &s.Manifest); err != nil {
		return nil, fmt.Errorf("Γ store %s: manifest: %w", dir, err)
	}
	if s.Format != Format {
		return nil, fmt.Errorf("Γ store %s: format %q, want %q", dir, s.Format, Format)
	}
	for _, p := range s.Parts {
		if err := s.loadPart(p); err != nil {
			return nil, fmt.Errorf("Γ store %s: %s: %w", dir, p.File, err)
		}
	}
	return s, nil
}

func (s *Store) loadPart(p Part) error {
	img, err := os.ReadFile(filepath.Join(s.Dir, p.File))
	if err != nil {
		return err
	}
	if job.SHA256(img) != p.SHA256 {
		return fmt.Errorf("checksum mismatch: the file is corrupted or truncated")
	}
	d, err := statefile.Decode(img)
	if err != nil {
		return err
	}
	for name, t := range d.Tensors {
		switch {
		case len(name) > 6 && name[len(name)-6:] == "/gamma":
			s.Gamma[name[:len(name)-6]] = t.F32
		case len(name) > 6 && name[len(name)-6:] == "/first":
			s.First[name[:len(name)-6]] = t.I32
		}
	}
	return nil
}

// CheckModel verifies that ck is the model the Γ was searched on and that
// every target has a Γ of the right size.
func (s *Store) CheckModel(ck *model.Checkpoint) error {
	fp, err := Fingerprint(ck)
	if err != nil {
		return err
	}
	if fp != s.Model.Fingerprint {
		return fmt.Errorf("the Γ store in %s was searched on another model (%s); %s does not match it", s.Dir, s.Model.Path, ck.Path)
	}
	for _, t := range model.Targets(ck.Config) {
		out, in := t.Matrix.Shape(ck.Config)
		if g := s.Gamma[t.TensorName()]; len(g) != out*in {
			return fmt.Errorf("Γ store lacks %s (or it has the wrong size)", t.TensorName())
		}
	}
	return nil
}

// spread returns n values of v at evenly spaced positions (all of v when
// it is shorter), always including the first and the last.
func spread(v []float32, n int) []float32 {
	if len(v) <= n {
		return v
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = v[int(int64(i)*int64(len(v)-1)/int64(n-1))]
	}
	return out
}
