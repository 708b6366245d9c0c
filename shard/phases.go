package shard

import (
	"sync"
	"time"
)

// Phases is where a worker's search time went, in seconds, summed over
// the steps it ran: the forward pass (layers, and the head's loss),
// backward (clearing and accumulating gradients, their squared norms),
// the saliency metric S^k, the optimizer (clipping, AdamW, ProxSparse),
// the mirror update (z, and Γ once τ is known) and the threshold
// histograms it answered. Metric, optimizer and mirror run on parallel
// goroutines; each gets the share of the Update call's wall time that its
// per-matrix durations have, so the phases add up to wall time.
type Phases struct {
	Forward   float64 `json:"forward"`
	Backward  float64 `json:"backward"`
	Metric    float64 `json:"metric"`
	Optimizer float64 `json:"optimizer"`
	Mirror    float64 `json:"z_gamma"`
	Threshold float64 `json:"threshold"`
	Steps     int     `json:"steps"`
}

// Add sums two records.
func (p Phases) Add(q Phases) Phases {
	return Phases{p.Forward + q.Forward, p.Backward + q.Backward, p.Metric + q.Metric,
		p.Optimizer + q.Optimizer, p.Mirror + q.Mirror, p.Threshold + q.Threshold, max(p.Steps, q.Steps)}
}

// Total is the sum of the phases.
func (p Phases) Total() float64 {
	return p.Forward + p.Backward + p.Metric + p.Optimizer + p.Mirror + p.Threshold
}

// PerStep divides every phase by the number of steps.
func (p Phases) PerStep() Phases {
	if p.Steps == 0 {
		return p
	}
	n := float64(p.Steps)
	return Phases{p.Forward / n, p.Backward / n, p.Metric / n, p.Optimizer / n, p.Mirror / n, p.Threshold / n, 1}
}

// phaseClock accumulates a worker's phases; Update's goroutines add their
// per-matrix durations under a lock, once per matrix.
type phaseClock struct {
	mu  sync.Mutex
	p   Phases
	par [3]time.Duration // metric, optimizer, mirror of the current Update
}

func (c *phaseClock) addPar(metric, opt, mir time.Duration) {
	c.mu.Lock()
	c.par[0] += metric
	c.par[1] += opt
	c.par[2] += mir
	c.mu.Unlock()
}

// endUpdate apportions the Update's wall time to its parallel phases.
func (c *phaseClock) endUpdate(wall time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sum := c.par[0] + c.par[1] + c.par[2]
	if sum > 0 {
		f := wall.Seconds() / sum.Seconds()
		c.p.Metric += c.par[0].Seconds() * f
		c.p.Optimizer += c.par[1].Seconds() * f
		c.p.Mirror += c.par[2].Seconds() * f
	}
	c.par = [3]time.Duration{}
}

func (c *phaseClock) add(field *float64, since time.Time) {
	c.mu.Lock()
	*field += time.Since(since).Seconds()
	c.mu.Unlock()
}

// Phases returns the worker's phase times so far.
func (wk *Worker) Phases() Phases {
	wk.clock.mu.Lock()
	defer wk.clock.mu.Unlock()
	p := wk.clock.p
	p.Steps = wk.step
	return p
}
