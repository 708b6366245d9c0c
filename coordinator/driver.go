package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/prune"
	"github.com/unipruning/unipruning/shardrpc"
)

// StepInfo is reported after every step (progress output, metrics).
type StepInfo struct {
	Step, Steps int
	LR          float64
	Loss        float64 // mean NLL of the step's window
	GradNorm    float64
	Tau         float64 // the model-wide threshold (NaN in reference mode)
	Seconds     float64
	// PeakRSS is each shard's peak resident set size in bytes, in shard
	// order, as the shards reported it with the step (0: not reported).
	PeakRSS []uint64
}

// Driver runs the search step loop over shards given in layer order.
type Driver struct {
	Spec   job.Spec
	Shards []shardrpc.API
	Ledger Ledger
	OnStep func(StepInfo)
	// Resumed is the step the run continued from (0 = a fresh start).
	Resumed int
	// Reset makes the driver restore every shard even when there is no
	// checkpoint (to the state before step 1): set it when shards may hold
	// state from an aborted attempt.
	Reset bool
	// Log receives the fallback notes (a lost checkpoint); nil: discard.
	Log *slog.Logger
	// FellBack lists the checkpoints skipped as lost or corrupt on resume,
	// newest first, with the reason.
	FellBack []string
	total    uint64
}

// Run assigns every shard its part, executes steps Resumed+1..Steps and
// returns the Γ parts of every shard, in layer order.
func (d *Driver) Run(ctx context.Context) ([]job.Ref, error) {
	d.Spec.Defaults()
	if err := d.assign(ctx); err != nil {
		return nil, err
	}
	if err := d.resume(ctx); err != nil {
		return nil, err
	}
	if err := d.count(ctx); err != nil {
		return nil, err
	}
	sched := nn.WarmupFor(d.Spec.LR, d.Spec.Steps)
	for k := d.Resumed + 1; k <= d.Spec.Steps; k++ {
		lr := 0.0
		if d.Spec.Trains() {
			lr = sched.LR(k - 1)
		}
		if err := d.step(ctx, k, lr); err != nil {
			return nil, fmt.Errorf("step %d: %w", k, err)
		}
	}
	return d.gammaParts(ctx)
}

// assign tells every shard its part (stage i of n in layer order); a
// shard that holds the spec already keeps its state.
func (d *Driver) assign(ctx context.Context) error {
	return d.each(ctx, func(ctx context.Context, i int, s shardrpc.API) error {
		_, err := s.Assign(ctx, d.Spec, i, len(d.Shards))
		return err
	})
}

// resume restores every shard from the newest step they all checkpointed
// whose images are all still present and intact. A checkpoint with a
// missing or corrupt part (a wiped or damaged blob store) is skipped for
// the next older one, and with none left the search restarts from step 0
// (the model and calibration are still on disk): determinism makes the
// replay give the same Γ. Other restore failures (a shard died) are
// returned, to be retried, without falling back.
func (d *Driver) resume(ctx context.Context) error {
	cands := d.Ledger.CommonCheckpoints(d.ranges())
	d.FellBack = nil
	for _, c := range cands {
		err := d.restoreAll(ctx, c.ByRange)
		if err == nil {
			return d.rollbackTo(ctx, c.Step)
		}
		if !shardrpc.IsImageLost(err) {
			return err
		}
		note := fmt.Sprintf("checkpoint of step %d is lost or corrupt (%v)", c.Step, err)
		d.FellBack = append(d.FellBack, note)
		d.logger().Warn("falling back from a lost checkpoint", "step", c.Step, "err", err)
	}
	if len(cands) > 0 {
		d.logger().Warn("no intact checkpoint left: restarting the search from step 0", "lost", len(cands))
	}
	if err := d.rollbackTo(ctx, 0); err != nil {
		return err
	}
	if !d.Reset && len(cands) == 0 {
		return nil // a fresh start: the shards hold their initial state
	}
	return d.restoreAll(ctx, nil)
}

// restoreAll restores every shard from its range's manifest (a zero Ref,
// i.e. a reset, when byRange is nil).
func (d *Driver) restoreAll(ctx context.Context, byRange map[[2]int]job.Checkpoint) error {
	return d.each(ctx, func(ctx context.Context, i int, s shardrpc.API) error {
		p := s.Part()
		return s.Restore(ctx, byRange[[2]int{p.From, p.To}].Ref)
	})
}

// rollbackTo records the step the run continues from (nothing to record on
// a fresh start).
func (d *Driver) rollbackTo(ctx context.Context, step int) error {
	if step > 0 || len(d.Ledger.Steps()) > 0 {
		reason := "resume"
		if len(d.FellBack) > 0 {
			reason = fmt.Sprintf("resume; fell back past %d lost checkpoint(s)", len(d.FellBack))
		}
		if err := d.Ledger.Rollback(ctx, step, reason); err != nil {
			return err
		}
	}
	d.Resumed = step
	return nil
}

func (d *Driver) logger() *slog.Logger {
	if d.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Log
}

func (d *Driver) ranges() [][2]int {
	rs := make([][2]int, len(d.Shards))
	for i, s := range d.Shards {
		p := s.Part()
		rs[i] = [2]int{p.From, p.To}
	}
	return rs
}

func (d *Driver) count(ctx context.Context) error {
	d.total = 0
	for _, s := range d.Shards {
		n, err := s.Count(ctx)
		if err != nil {
			return err
		}
		d.total += n
	}
	return nil
}

// step runs one search step across all shards.
func (d *Driver) step(ctx context.Context, k int, lr float64) error {
	start := time.Now()
	if err := d.Ledger.BeginStep(ctx, k, lr); err != nil {
		return err
	}
	results := make([]shardrpc.StepResult, len(d.Shards))
	err := d.each(ctx, func(ctx context.Context, i int, s shardrpc.API) error {
		var err error
		results[i], err = s.Step(ctx, k)
		return err
	})
	if err != nil {
		return err
	}
	facts := job.StepFacts{LR: lr}
	last := results[len(results)-1]
	loss := last.Loss / float64(max(1, last.Count))
	facts.Loss = &loss
	coef := 1.0
	if d.Spec.Trains() {
		norm := gradNorm(results)
		facts.GradNorm = &norm
		coef = nn.ClipCoef(norm, d.Spec.ClipNorm)
	}
	if err := d.each(ctx, func(ctx context.Context, i int, s shardrpc.API) error { return s.Update(ctx, k, lr, coef) }); err != nil {
		return err
	}
	tau, err := d.threshold(ctx)
	if err != nil {
		return err
	}
	if d.Spec.Mode != job.ModeReference {
		t := float64(tau)
		facts.Tau = &t
	}
	if err := d.each(ctx, func(ctx context.Context, i int, s shardrpc.API) error { return s.ApplyTau(ctx, k, tau) }); err != nil {
		return err
	}
	if err := d.Ledger.CommitStep(ctx, k, facts); err != nil {
		return err
	}
	if d.Spec.CheckpointEvery > 0 && k%d.Spec.CheckpointEvery == 0 && k < d.Spec.Steps {
		if err := d.checkpoint(ctx, k); err != nil {
			return err
		}
	}
	if d.OnStep != nil {
		info := StepInfo{Step: k, Steps: d.Spec.Steps, LR: lr, Loss: loss, Tau: math.NaN(), Seconds: time.Since(start).Seconds()}
		for _, r := range results {
			info.PeakRSS = append(info.PeakRSS, r.PeakRSS)
		}
		if facts.GradNorm != nil {
			info.GradNorm = *facts.GradNorm
		}
		if facts.Tau != nil {
			info.Tau = *facts.Tau
		}
		d.OnStep(info)
	}
	return nil
}

// gradNorm sums the per-layer squared norms in layer order (float64), so
// the result does not depend on how layers are spread over shards.
func gradNorm(rs []shardrpc.StepResult) float64 {
	var s float64
	for _, r := range rs {
		for _, v := range r.GradSumSq {
			s += v
		}
	}
	return math.Sqrt(s)
}

// threshold selects the model-wide τ (global and frozen modes): the
// k-th smallest |z| over all shards with k = round(λ·N), by exact radix
// selection on histograms (shards never ship scores).
func (d *Driver) threshold(ctx context.Context) (float32, error) {
	if d.Spec.Mode == job.ModeReference {
		return 0, nil
	}
	parts := make([]prune.Partition, len(d.Shards))
	for i, s := range d.Shards {
		parts[i] = remotePartition{ctx: ctx, s: s}
	}
	tau, _, err := prune.Threshold(parts, d.Spec.Lambda)
	return tau, err
}

// remotePartition adapts a shard to the selection's Partition.
type remotePartition struct {
	ctx context.Context
	s   shardrpc.API
}

func (p remotePartition) Histogram(q prune.HistQuery, dst []uint64) error {
	return p.s.Histogram(p.ctx, q, dst)
}

func (p remotePartition) CountEqual(key uint32) (uint64, error) {
	return p.s.CountEqual(p.ctx, key)
}

// checkpoint asks every shard to store its state of step k.
func (d *Driver) checkpoint(ctx context.Context, k int) error {
	return d.each(ctx, func(ctx context.Context, i int, s shardrpc.API) error {
		ref, err := s.Checkpoint(ctx)
		if err != nil {
			return err
		}
		p := s.Part()
		return d.Ledger.RecordCheckpoint(ctx, job.Checkpoint{Step: k, Shard: s.ID(), Layers: [2]int{p.From, p.To}, Ref: ref})
	})
}

func (d *Driver) gammaParts(ctx context.Context) ([]job.Ref, error) {
	refs := make([]job.Ref, len(d.Shards))
	err := d.each(ctx, func(ctx context.Context, i int, s shardrpc.API) error {
		var err error
		refs[i], err = s.GammaPart(ctx)
		return err
	})
	return refs, err
}

// each calls f for every shard concurrently; the first failure cancels the
// others (a shard blocked on its pipe must not wait forever).
func (d *Driver) each(ctx context.Context, f func(ctx context.Context, i int, s shardrpc.API) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(d.Shards))
	var wg sync.WaitGroup
	for i, s := range d.Shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = f(ctx, i, s); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	// Report the cause, not a sibling's cancellation caused by it.
	for i, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("shard %s: %w", d.Shards[i].ID(), err)
		}
	}
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("shard %s: %w", d.Shards[i].ID(), err)
		}
	}
	return nil
}
