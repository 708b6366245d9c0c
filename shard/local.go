package shard

import (
	"context"
	"fmt"

	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/prune"
	"github.com/unipruning/unipruning/shardrpc"
)

// Load is the shardrpc.Loader of this worker.
func Load(spec job.Spec, part nn.Part, pipe shardrpc.Pipe) (shardrpc.Worker, error) {
	return NewWorker(spec, part, pipe)
}

var _ shardrpc.Worker = (*Worker)(nil)

// Local is a shard in this process: it implements shardrpc.API directly
// on a Worker, storing images in Blobs. Its part and pipe are fixed when
// it is made; Assign loads the worker (or keeps it for the same spec).
type Local struct {
	name  string
	part  nn.Part
	pipe  shardrpc.Pipe
	blobs shardrpc.BlobStore
	w     *Worker
	spec  string // hash of the loaded worker's spec
}

var _ shardrpc.API = (*Local)(nil)

// NewLocal returns an unloaded in-process shard owning part, connected
// to its neighbours by pipe.
func NewLocal(name string, part nn.Part, pipe shardrpc.Pipe, blobs shardrpc.BlobStore) *Local {
	return &Local{name: name, part: part, pipe: pipe, blobs: blobs}
}

// LocalChain returns in-process shards for parts (in layer order),
// connected by channel pipes. Close them when done.
func LocalChain(parts []nn.Part, blobs shardrpc.BlobStore) []*Local {
	pipes := shardrpc.LocalPipes(len(parts))
	ls := make([]*Local, len(parts))
	for i, p := range parts {
		ls[i] = NewLocal(fmt.Sprintf("shard-%d", i), p, pipes[i], blobs)
	}
	return ls
}

// ID names the shard.
func (l *Local) ID() string { return l.name }

// Part is the owned part of the model.
func (l *Local) Part() nn.Part { return l.part }

// Worker is the loaded worker (nil before Assign).
func (l *Local) Worker() *Worker { return l.w }

// Assign loads the worker for spec, unless it holds that spec already.
// The stage is fixed by the pipe the shard was made with.
func (l *Local) Assign(ctx context.Context, spec job.Spec, stage, stages int) (uint64, error) {
	spec.Defaults()
	if l.w != nil && l.spec == spec.Hash() {
		return l.w.Count(), nil
	}
	if err := l.Close(); err != nil {
		return 0, err
	}
	w, err := NewWorker(spec, l.part, l.pipe)
	if err != nil {
		return 0, fmt.Errorf("load part %+v: %w", l.part, err)
	}
	l.w, l.spec = w, spec.Hash()
	return w.Count(), nil
}

// Close releases the worker.
func (l *Local) Close() error {
	if l.w == nil {
		return nil
	}
	err := l.w.Close()
	l.w, l.spec = nil, ""
	return err
}

func (l *Local) worker() (*Worker, error) {
	if l.w == nil {
		return nil, fmt.Errorf("shard %s has no part assigned", l.name)
	}
	return l.w, nil
}

// Count is the number of owned target weights.
func (l *Local) Count(ctx context.Context) (uint64, error) {
	w, err := l.worker()
	if err != nil {
		return 0, err
	}
	return w.Count(), nil
}

// Step runs step k's forward/backward.
func (l *Local) Step(ctx context.Context, k int) (shardrpc.StepResult, error) {
	w, err := l.worker()
	if err != nil {
		return shardrpc.StepResult{}, err
	}
	return w.Step(ctx, k)
}

// Update applies step k's metric, optimizer and z update.
func (l *Local) Update(ctx context.Context, k int, lr, c float64) error {
	w, err := l.worker()
	if err != nil {
		return err
	}
	return w.Update(ctx, k, lr, c)
}

// Histogram answers a selection round.
func (l *Local) Histogram(ctx context.Context, q prune.HistQuery, dst []uint64) error {
	w, err := l.worker()
	if err != nil {
		return err
	}
	return w.Histogram(ctx, q, dst)
}

// CountEqual counts keys equal to key.
func (l *Local) CountEqual(ctx context.Context, key uint32) (uint64, error) {
	w, err := l.worker()
	if err != nil {
		return 0, err
	}
	return w.CountEqual(ctx, key)
}

// ApplyTau finishes step k.
func (l *Local) ApplyTau(ctx context.Context, k int, tau float32) error {
	w, err := l.worker()
	if err != nil {
		return err
	}
	return w.ApplyTau(ctx, k, tau)
}

// Checkpoint stores the shard state.
func (l *Local) Checkpoint(ctx context.Context) (job.Ref, error) {
	return l.store(ctx, (*Worker).Checkpoint)
}

// GammaPart stores the shard's Γ part.
func (l *Local) GammaPart(ctx context.Context) (job.Ref, error) {
	return l.store(ctx, (*Worker).GammaPart)
}

func (l *Local) store(ctx context.Context, image func(*Worker) ([]byte, error)) (job.Ref, error) {
	w, err := l.worker()
	if err != nil {
		return job.Ref{}, err
	}
	img, err := image(w)
	if err != nil {
		return job.Ref{}, err
	}
	return shardrpc.PutImage(ctx, l.blobs, img)
}

// Restore loads a stored state; an empty ref resets the shard to its
// state before step 1.
func (l *Local) Restore(ctx context.Context, ref job.Ref) error {
	w, err := l.worker()
	if err != nil {
		return err
	}
	if ref.Key == "" {
		return w.Reset()
	}
	img, err := shardrpc.FetchImage(ctx, l.blobs, ref)
	if err != nil {
		return err
	}
	return w.Restore(img)
}
