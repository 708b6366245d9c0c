// Package job is the vocabulary of a UniPruning search job shared by every
// process that takes part in it: the spec that determines Γ, the cluster
// job around it, and the small facts recorded while it runs (per-step
// scalars, checkpoint manifests, references to stored images). It holds
// these types with their validation and nothing that computes, so the
// coordinator, the Raft state machine, the shard worker and the Γ store
// agree on one definition of each fact.
package job

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/unipruning/unipruning/prune"
)

// Search modes (DESIGN §2.3).
const (
	ModeReference = "reference" // AdamW + per-matrix λ-quantile, as the released code
	ModeGlobal    = "global"    // AdamW + one model-wide threshold
	ModeFrozen    = "frozen"    // no weight update, forward only, model-wide threshold
)

// Calibration formats (eval.CalibC4, eval.CalibLines).
const (
	CalibC4    = "c4"
	CalibLines = "lines"
)

// Spec is a search job: everything that determines Γ. Two runs with equal
// specs (and equal input files) produce bitwise-identical Γ.
type Spec struct {
	Model     string       `json:"model"`
	Tokenizer string       `json:"tokenizer,omitempty"`
	Mode      string       `json:"mode"`
	Metric    prune.Metric `json:"metric"`
	// Kappa is the mirror-descent step κ, Lambda the threshold budget λ.
	Kappa    float64 `json:"kappa"`
	Lambda   float64 `json:"lambda"`
	LR       float64 `json:"lr"`
	ClipNorm float64 `json:"clip_norm"`
	Lambda2  float64 `json:"lambda2,omitempty"` // ProxSparse 2:4 regulariser (0 = off)
	Steps    int     `json:"steps"`
	Seed     uint64  `json:"seed"`
	// Calibration: Steps windows are drawn; step k uses window k−1.
	CalibPath   string `json:"calib_path"`
	CalibFormat string `json:"calib_format"`
	Seqlen      int    `json:"seqlen"`
	// CheckpointEvery C: a checkpoint after every C steps (0 = only at the end).
	CheckpointEvery int `json:"checkpoint_every"`
	// Chunk splits each window into chunks of this many tokens, run as a
	// pipeline across shards (0 or ≥ Seqlen: one chunk, the unchunked
	// arithmetic). Γ depends on it, like on the seed.
	Chunk int `json:"chunk,omitempty"`
}

// Defaults fills unset fields with the values of DESIGN §2.3. Steps has
// no default: a job that gives none (or 0) is refused, not run for 128.
func (s *Spec) Defaults() {
	def := func(p *float64, v float64) {
		if *p == 0 {
			*p = v
		}
	}
	if s.Mode == "" {
		s.Mode = ModeGlobal
	}
	if s.Metric == "" {
		s.Metric = prune.MetricStochRIA
	}
	def(&s.Kappa, 0.01)
	def(&s.Lambda, 0.001)
	def(&s.LR, 1e-4)
	def(&s.ClipNorm, 1)
	if s.CalibFormat == "" {
		s.CalibFormat = "c4"
	}
	if s.Seqlen > 0 && s.Chunk >= s.Seqlen {
		s.Chunk = 0 // one chunk per window: the same run as no chunking
	}
}

// Validate rejects a spec that cannot run, with the reason (an error of
// class InvalidInput).
func (s *Spec) Validate() error { return Invalid(s.validate()) }

func (s *Spec) validate() error {
	switch s.Mode {
	case ModeReference, ModeGlobal, ModeFrozen:
	default:
		return fmt.Errorf("mode %q (want reference, global or frozen)", s.Mode)
	}
	if _, err := prune.ParseMetric(string(s.Metric)); err != nil {
		return err
	}
	switch {
	case s.Model == "":
		return fmt.Errorf("no model")
	case s.CalibPath == "":
		return fmt.Errorf("no calibration text")
	case s.CalibFormat != CalibC4 && s.CalibFormat != CalibLines:
		return fmt.Errorf("calib_format %q (want %s or %s)", s.CalibFormat, CalibC4, CalibLines)
	case !(s.Kappa > 0):
		return fmt.Errorf("kappa must be positive (got %v)", s.Kappa)
	case !(s.Lambda >= 0 && s.Lambda < 1):
		return fmt.Errorf("lambda must be in [0,1) (got %v)", s.Lambda)
	case s.Steps < 1:
		return fmt.Errorf("steps must be at least 1 (got %d)", s.Steps)
	case s.Seqlen < 2:
		return fmt.Errorf("seqlen must be at least 2 (got %d)", s.Seqlen)
	case s.Mode != ModeFrozen && !(s.LR >= 0):
		return fmt.Errorf("lr must be non-negative")
	case s.Lambda2 < 0:
		return fmt.Errorf("lambda2 must be non-negative")
	case s.Mode == ModeFrozen && s.Lambda2 > 0:
		return fmt.Errorf("lambda2 (the N:M regulariser on weights) needs a mode that updates weights, not frozen")
	case s.Chunk < 0:
		return fmt.Errorf("chunk must be non-negative (got %d)", s.Chunk)
	case s.CheckpointEvery < 0:
		return fmt.Errorf("checkpoint interval must be non-negative")
	}
	return nil
}

// Trains reports whether the mode updates weights (forward + backward).
func (s *Spec) Trains() bool { return s.Mode != ModeFrozen }

// Hash identifies the spec (its canonical JSON).
func (s *Spec) Hash() string {
	b, _ := json.Marshal(s)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
