package gammastore

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
)

// Blobs is the blob store the shards put their Γ parts in, keyed by
// sha256 (transport's filesystem and JetStream stores satisfy it).
type Blobs interface {
	Put(ctx context.Context, data []byte) (string, error)
	Get(ctx context.Context, key string) ([]byte, error)
}

// PartRef is one shard's Γ part in the blob store and the decoder layers
// [From, To) it covers.
type PartRef struct {
	Ref    job.Ref
	Layers [2]int
}

// NewManifest describes a finished search of spec on the model ck: the
// spec and its hash, the model's identity and fingerprint, and the facts
// of steps 1..spec.Steps. The caller adds what it alone knows
// (Calibration, Seconds, Machine).
func NewManifest(spec job.Spec, ck *model.Checkpoint, steps map[int]job.StepFacts, resumed int) (*Manifest, error) {
	fp, err := Fingerprint(ck)
	if err != nil {
		return nil, err
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	m := &Manifest{Format: Format, Spec: specJSON, SpecHash: spec.Hash(), Resumed: resumed,
		Model: ModelID{Path: spec.Model, Format: string(ck.Format), Config: ck.Config, Fingerprint: fp}}
	for k := 1; k <= spec.Steps; k++ {
		m.Steps = append(m.Steps, StepRecord{Step: k, StepFacts: steps[k]})
	}
	return m, nil
}

// Assemble writes the Γ store into dir: every part fetched from blobs
// (checked against its sha256) into gamma/part-L<from>-L<to>.state, then
// the manifest, which lists the parts. It returns the manifest's bytes as
// written.
func Assemble(ctx context.Context, blobs Blobs, dir string, m *Manifest, parts []PartRef) ([]byte, error) {
	if err := os.MkdirAll(filepath.Join(dir, "gamma"), 0o755); err != nil {
		return nil, err
	}
	m.Format, m.Parts = Format, nil
	for _, p := range parts {
		img, err := blobs.Get(ctx, p.Ref.Key)
		if err != nil {
			return nil, fmt.Errorf("Γ part of layers %v: %w", p.Layers, err)
		}
		if err := p.Ref.Check(img); err != nil {
			return nil, fmt.Errorf("Γ part of layers %v: %w", p.Layers, err)
		}
		name := fmt.Sprintf("gamma/part-L%03d-L%03d.state", p.Layers[0], p.Layers[1])
		if err := writeAtomic(filepath.Join(dir, name), img); err != nil {
			return nil, err
		}
		m.Parts = append(m.Parts, Part{File: name, From: p.Layers[0], To: p.Layers[1],
			SHA256: job.SHA256(img), Bytes: int64(len(img))})
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	return b, writeAtomic(filepath.Join(dir, ManifestName), b)
}

// Publish assembles the Γ store into dir and puts its manifest into blobs
// as well (the parts are there already, keyed by their sha256), so Fetch
// can rebuild the store on any host that reaches the blob store. It
// returns the manifest's key.
func Publish(ctx context.Context, blobs Blobs, dir string, m *Manifest, parts []PartRef) (string, error) {
	b, err := Assemble(ctx, blobs, dir, m, parts)
	if err != nil {
		return "", err
	}
	return blobs.Put(ctx, b)
}

// Fetch rebuilds in dir the Γ store whose manifest is stored under key,
// then opens it, which verifies every part against its sha256.
func Fetch(ctx context.Context, blobs Blobs, key, dir string) error {
	b, err := blobs.Get(ctx, key)
	if err != nil {
		return err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("Γ manifest %.12s: %w", key, err)
	}
	if m.Format != Format {
		return fmt.Errorf("Γ manifest %.12s: format %q, want %q", key, m.Format, Format)
	}
	for _, p := range m.Parts {
		img, err := blobs.Get(ctx, p.SHA256)
		if err != nil {
			return fmt.Errorf("part %s: %w", p.File, err)
		}
		path := filepath.Join(dir, filepath.FromSlash(p.File))
		if !filepath.IsLocal(p.File) {
			return fmt.Errorf("part %s: not a path inside the store", p.File)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := writeAtomic(path, img); err != nil {
			return err
		}
	}
	if err := writeAtomic(filepath.Join(dir, ManifestName), b); err != nil {
		return err
	}
	_, err = Open(dir)
	return err
}
