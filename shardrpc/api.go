// Package shardrpc is the protocol between the coordinator and the search
// shards (DESIGN §3.1–3.2): the API a coordinator drives, its NATS binding
// (Remote, the client; Server, which runs calls on a Worker), the wire
// types, and the pipes that carry activations and gradients between
// neighbouring shards. It holds no search state: the worker behind a
// Server (package shard) is given to it as a Loader, so the coordinator
// depends on the protocol only.
package shardrpc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/prune"
	"github.com/unipruning/unipruning/transport"
)

// BlobStore keeps checkpoint and Γ images, content-addressed by sha256
// (transport's filesystem and JetStream stores satisfy it).
type BlobStore interface {
	Put(ctx context.Context, data []byte) (string, error)
	Get(ctx context.Context, key string) ([]byte, error)
}

// API is what the coordinator asks of a shard, in process or over the
// network. Assign comes first (and again after any change of epoch); the
// calls for a step must come in order: Step, Update, (selection queries),
// ApplyTau.
type API interface {
	ID() string
	Part() nn.Part
	// Assign gives the shard its part of spec as stage of stages (stage 0
	// embeds, the last computes the loss), loading it if needed, and
	// returns its target count. A shard that already holds the same spec
	// and part keeps its state.
	Assign(ctx context.Context, spec job.Spec, stage, stages int) (uint64, error)
	Count(ctx context.Context) (uint64, error)
	Step(ctx context.Context, k int) (StepResult, error)
	Update(ctx context.Context, k int, lr, clipCoef float64) error
	Histogram(ctx context.Context, q prune.HistQuery, dst []uint64) error
	CountEqual(ctx context.Context, key uint32) (uint64, error)
	ApplyTau(ctx context.Context, k int, tau float32) error
	Checkpoint(ctx context.Context) (job.Ref, error)
	// Restore loads a checkpoint; an empty Ref (Key "") resets the shard to
	// its state before step 1.
	Restore(ctx context.Context, ref job.Ref) error
	GammaPart(ctx context.Context) (job.Ref, error)
}

// StepResult is what a shard reports after the forward/backward of a step.
type StepResult struct {
	Step int `json:"step"`
	// Loss is the summed NLL over Count predictions (last shard only).
	Loss  float64 `json:"loss"`
	Count int     `json:"count"`
	// GradSumSq[i] is Σ g² over the targets of layer From+i (float64), so
	// the leader can sum layers in a fixed order whatever the sharding.
	GradSumSq []float64 `json:"grad_sumsq,omitempty"`
	From      int       `json:"from"`
	// PeakRSS is the shard process's peak resident set size so far, in
	// bytes (0 where the platform does not say).
	PeakRSS uint64 `json:"peak_rss,omitempty"`
}

// Worker is the search state of one part of the model that a Server runs
// calls on (shard.Worker implements it). Step numbers are checked by the
// worker: a call out of order is an error, never a silent skip.
type Worker interface {
	Config() *model.Config
	Count() uint64
	LastStep() int
	Step(ctx context.Context, k int) (StepResult, error)
	Update(ctx context.Context, k int, lr, clipCoef float64) error
	Histogram(ctx context.Context, q prune.HistQuery, dst []uint64) error
	CountEqual(ctx context.Context, key uint32) (uint64, error)
	ApplyTau(ctx context.Context, k int, tau float32) error
	// Checkpoint and GammaPart serialise the state; Restore loads a
	// checkpoint image (checking all of it before changing anything) and
	// Reset returns to the state before step 1.
	Checkpoint() ([]byte, error)
	GammaPart() ([]byte, error)
	Restore(img []byte) error
	Reset() error
	// SetPipe replaces the pipe to the neighbours (a new epoch keeps the
	// loaded state but not the streams); called only between operations.
	SetPipe(p Pipe)
	Close() error
}

// Loader makes the Worker of a part of spec, connected to its neighbours
// by pipe (shard.Load).
type Loader func(spec job.Spec, part nn.Part, pipe Pipe) (Worker, error)

// BlobTimeout bounds one blob transfer whose context has no deadline of
// its own: a store that stops answering cannot hold a call forever.
var BlobTimeout = 10 * time.Minute

// bounded runs f under ctx (given BlobTimeout when it has no deadline) and
// returns as soon as f does or ctx ends. A store that ignores its context
// cannot block the caller, nor the calls queued behind it on the shard:
// the abandoned transfer finishes, or fails, in the background.
func bounded[T any](ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, BlobTimeout)
		defer cancel()
	}
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f(ctx)
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("blob transfer abandoned: %w", context.Cause(ctx))
	}
}

// PutImage stores img and returns its reference.
func PutImage(ctx context.Context, b BlobStore, img []byte) (job.Ref, error) {
	if b == nil {
		return job.Ref{}, fmt.Errorf("store image: no blob store configured")
	}
	key, err := bounded(ctx, func(ctx context.Context) (string, error) { return b.Put(ctx, img) })
	if err != nil {
		return job.Ref{}, err
	}
	return job.RefOf(key, img), nil
}

// IsImageLost reports whether err says a checkpoint image is gone or
// corrupt (code image_missing or checksum, in process or over the wire):
// recovery then falls back to an older checkpoint instead of retrying.
func IsImageLost(err error) bool {
	return errors.Is(err, transport.ErrNotFound) || errors.Is(err, transport.ErrChecksum) ||
		IsCode(err, CodeImageMissing) || IsCode(err, CodeChecksum)
}

// ClassOf classifies a shard call's error: an input error the shard
// reported over the wire (code invalid_input) keeps its class.
func ClassOf(err error) job.Class {
	if IsCode(err, CodeInvalidInput) {
		return job.InvalidInput
	}
	return job.ClassOf(err)
}

// FetchImage gets a stored image and checks it against ref's sha256 (a
// store need not verify what it returns). A checksum failure, the store's
// own or ref's, has code "checksum".
func FetchImage(ctx context.Context, b BlobStore, ref job.Ref) ([]byte, error) {
	if b == nil {
		return nil, fmt.Errorf("restore: no blob store configured")
	}
	img, err := bounded(ctx, func(ctx context.Context) ([]byte, error) { return b.Get(ctx, ref.Key) })
	if errors.Is(err, transport.ErrNotFound) {
		return nil, transport.WithCode(CodeImageMissing, fmt.Errorf("restore: checkpoint image %s is not in the blob store: %w", ref.Key, err))
	}
	if errors.Is(err, transport.ErrChecksum) {
		return nil, transport.WithCode(CodeChecksum, fmt.Errorf("restore: checkpoint image %s fails its checksum: %w", ref.Key, err))
	}
	if err != nil {
		return nil, fmt.Errorf("restore: fetch checkpoint image %s: %w", ref.Key, err)
	}
	if err := ref.Check(img); err != nil {
		return nil, transport.WithCode(CodeChecksum, fmt.Errorf("restore: checkpoint %w", err))
	}
	return img, nil
}
