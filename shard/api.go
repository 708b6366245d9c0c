package shard

import (
	"context"
	"errors"
	"fmt"

	"github.com/unipruning/unipruning/prune"
	"github.com/unipruning/unipruning/transport"
)

// BlobStore keeps checkpoint and Γ images, content-addressed by sha256
// (transport's filesystem and JetStream stores satisfy it).
type BlobStore interface {
	Put(ctx context.Context, data []byte) (string, error)
	Get(ctx context.Context, key string) ([]byte, error)
}

// Ref names a stored image and its checksum.
type Ref struct {
	Key    string `json:"key"`
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
}

// API is what the coordinator asks of a shard, in process or over the
// network. Calls for a step must come in order: Step, Update, (selection
// queries), ApplyTau.
type API interface {
	ID() string
	Part() Part
	Count(ctx context.Context) (uint64, error)
	Step(ctx context.Context, k int) (StepResult, error)
	Update(ctx context.Context, k int, lr, clipCoef float64) error
	Histogram(ctx context.Context, q prune.HistQuery, dst []uint64) error
	CountEqual(ctx context.Context, key uint32) (uint64, error)
	ApplyTau(ctx context.Context, k int, tau float32) error
	Checkpoint(ctx context.Context) (Ref, error)
	// Restore loads a checkpoint; an empty Ref (Key "") resets the shard to
	// its state before step 1.
	Restore(ctx context.Context, ref Ref) error
	GammaPart(ctx context.Context) (Ref, error)
}

// Local adapts an in-process Worker to API, storing images in Blobs.
type Local struct {
	Name  string
	W     *Worker
	Blobs BlobStore
}

// ID names the shard.
func (l *Local) ID() string { return l.Name }

// Part is the owned part of the model.
func (l *Local) Part() Part { return l.W.Part() }

// Count is the number of owned target weights.
func (l *Local) Count(ctx context.Context) (uint64, error) { return l.W.Count(), nil }

// Step runs step k's forward/backward.
func (l *Local) Step(ctx context.Context, k int) (StepResult, error) { return l.W.Step(ctx, k) }

// Update applies step k's metric, optimizer and z update.
func (l *Local) Update(ctx context.Context, k int, lr, c float64) error {
	return l.W.Update(ctx, k, lr, c)
}

// Histogram answers a selection round.
func (l *Local) Histogram(ctx context.Context, q prune.HistQuery, dst []uint64) error {
	return l.W.Histogram(ctx, q, dst)
}

// CountEqual counts keys equal to key.
func (l *Local) CountEqual(ctx context.Context, key uint32) (uint64, error) {
	return l.W.CountEqual(ctx, key)
}

// ApplyTau finishes step k.
func (l *Local) ApplyTau(ctx context.Context, k int, tau float32) error {
	return l.W.ApplyTau(ctx, k, tau)
}

// Checkpoint stores the shard state.
func (l *Local) Checkpoint(ctx context.Context) (Ref, error) {
	img, err := l.W.Checkpoint()
	if err != nil {
		return Ref{}, err
	}
	return putImage(ctx, l.Blobs, img)
}

// Restore loads a stored state; an empty ref resets the shard to its
// state before step 1.
func (l *Local) Restore(ctx context.Context, ref Ref) error {
	if ref.Key == "" {
		return l.W.Reset()
	}
	img, err := fetchImage(ctx, l.Blobs, ref)
	if err != nil {
		return err
	}
	return l.W.Restore(img)
}

// GammaPart stores the shard's Γ part.
func (l *Local) GammaPart(ctx context.Context) (Ref, error) {
	img, err := l.W.GammaPart()
	if err != nil {
		return Ref{}, err
	}
	return putImage(ctx, l.Blobs, img)
}

func putImage(ctx context.Context, b BlobStore, img []byte) (Ref, error) {
	key, err := b.Put(ctx, img)
	if err != nil {
		return Ref{}, err
	}
	return Ref{Key: key, SHA256: transport.BlobKey(img), Bytes: int64(len(img))}, nil
}

// fetchImage gets a stored image and checks it against ref's sha256 (a
// store need not verify what it returns). A checksum failure, the store's
// own or ref's, has code "checksum".
func fetchImage(ctx context.Context, b BlobStore, ref Ref) ([]byte, error) {
	if b == nil {
		return nil, fmt.Errorf("restore: no blob store configured")
	}
	img, err := b.Get(ctx, ref.Key)
	if errors.Is(err, transport.ErrChecksum) {
		return nil, transport.WithCode(CodeChecksum, fmt.Errorf("restore: checkpoint image %s fails its checksum: %w", ref.Key, err))
	}
	if err != nil {
		return nil, fmt.Errorf("restore: fetch checkpoint image %s: %w", ref.Key, err)
	}
	if got := transport.BlobKey(img); ref.SHA256 != "" && got != ref.SHA256 {
		return nil, transport.WithCode(CodeChecksum, fmt.Errorf("restore: checkpoint image %s has sha256 %s (%d bytes), its manifest says %s (%d bytes): checksum mismatch, the stored copy is corrupt",
			ref.Key, got, len(img), ref.SHA256, ref.Bytes))
	}
	return img, nil
}
