package coordinator

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/unipruning/unipruning/consensus"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/shardrpc"
)

// action is what the leader does after a failed attempt.
type action int

const (
	// recoverJob: new epoch, roll every shard back to the newest intact
	// common checkpoint and replay, after a backoff.
	recoverJob action = iota
	// stepDown: a newer epoch or another leader exists in Raft; stop
	// leading and let that replica continue.
	stepDown
	// failJob: record the job as failed (a terminal state).
	failJob
	// ended: the job reached a terminal state meanwhile (nothing to do).
	ended
)

func (a action) String() string {
	return [...]string{"recover", "step down", "fail", "ended"}[a]
}

// classify sorts an attempt's error by its nature alone: Raft fencing and
// lost leadership step down; input and permanent errors fail the job at
// once; everything else is transient and retried within retryPolicy's
// bounds. A shard's stale-epoch refusal is not Raft's fencing: the leader
// handles it before classify (fenced.go).
func classify(err error) (action, job.Class) {
	switch {
	case errors.Is(err, consensus.ErrTerminal):
		return ended, job.Transient
	case errors.Is(err, consensus.ErrStaleEpoch), errors.Is(err, consensus.ErrNotLeader):
		return stepDown, job.Transient
	}
	switch c := shardrpc.ClassOf(err); c {
	case job.InvalidInput, job.Permanent:
		return failJob, c
	}
	return recoverJob, job.Transient
}

// volatile matches the parts of an error message that differ between two
// occurrences of the same failure: request and command IDs, epochs, step
// numbers, addresses, durations (any token with a digit in it).
var volatile = regexp.MustCompile(`[0-9A-Za-z_.:-]*[0-9][0-9A-Za-z_.:-]*`)

// causeOf is the key under which failures count as "the same": the message
// with its volatile tokens blanked. Comparing raw messages never matched,
// because each carries a fresh request ID.
func causeOf(err error) string {
	return volatile.ReplaceAllString(err.Error(), "#")
}

// retryPolicy bounds the retries of transient failures: each cause backs
// off exponentially on its own (first, doubling, up to limit); a cause
// that recurs maxSame times without progress, or maxAttempts failures of
// any causes without progress, fail the job. Progress (a step beyond any
// reached before) resets every count.
type retryPolicy struct {
	maxSame, maxAttempts int
	first, limit         time.Duration
	causes               map[string]*causeState
	sinceProgress        int
}

type causeState struct {
	count   int
	backoff time.Duration
}

func newRetryPolicy(maxSame int) *retryPolicy {
	return &retryPolicy{maxSame: maxSame, maxAttempts: 4 * maxSame, first: 200 * time.Millisecond, limit: 10 * time.Second,
		causes: map[string]*causeState{}}
}

// decision is the policy's answer to one failed attempt.
type decision struct {
	act    action
	wait   time.Duration // before the next attempt (recoverJob)
	class  job.Class     // of the failure (failJob)
	reason string        // why the job fails (failJob)
}

// next decides after a failed attempt; progressed reports whether the
// attempt got further than any before it.
func (p *retryPolicy) next(err error, progressed bool) decision {
	act, class := classify(err)
	switch act {
	case failJob:
		return decision{act: failJob, class: class, reason: fmt.Sprintf("%s error: %v", class, err)}
	case stepDown, ended:
		return decision{act: act}
	}
	if progressed {
		clear(p.causes)
		p.sinceProgress = 0
	}
	p.sinceProgress++
	key := causeOf(err)
	c := p.causes[key]
	if c == nil {
		c = &causeState{backoff: p.first}
		p.causes[key] = c
	} else {
		c.backoff = min(2*c.backoff, p.limit)
	}
	c.count++
	switch {
	case c.count >= p.maxSame:
		return decision{act: failJob, class: job.Transient,
			reason: fmt.Sprintf("the same failure recurred %d times without progress: %v", c.count, err)}
	case p.sinceProgress >= p.maxAttempts:
		return decision{act: failJob, class: job.Transient,
			reason: fmt.Sprintf("%d attempts without progress; the last failed with: %v", p.sinceProgress, err)}
	}
	return decision{act: recoverJob, wait: c.backoff}
}
