package coordinator

import (
	"errors"
	"time"

	"github.com/unipruning/unipruning/consensus"
	"github.com/unipruning/unipruning/shardrpc"
)

// action is what the leader does after a failed attempt.
type action int

const (
	// recoverJob: new epoch, roll every shard back to the newest common
	// checkpoint and replay, after a backoff.
	recoverJob action = iota
	// stepDown: a newer epoch or another leader exists; stop leading and
	// let that replica continue.
	stepDown
	// failJob: record the job as failed (a terminal state).
	failJob
)

func (a action) String() string {
	return [...]string{"recover", "step down", "fail"}[a]
}

// classify sorts an attempt's error into the action it calls for by its
// nature alone; recovery is the default, so an unknown error is retried
// (within retryPolicy's bound). New kinds of errors (e.g. input errors
// that no retry can fix) get their case here.
func classify(err error) action {
	switch {
	case errors.Is(err, shardrpc.ErrStaleEpoch), errors.Is(err, consensus.ErrStaleEpoch), errors.Is(err, consensus.ErrNotLeader):
		return stepDown
	}
	return recoverJob
}

// retryPolicy decides attempt by attempt: it follows classify, but gives
// up when the same failure recurs max times in a row, and spaces retries
// with an exponential backoff (reset when the failure changes).
type retryPolicy struct {
	max      int
	first    time.Duration // first backoff
	limit    time.Duration // backoff cap
	same     int
	last     string
	backoff  time.Duration
	attempts int
}

func newRetryPolicy(max int) *retryPolicy {
	return &retryPolicy{max: max, first: 200 * time.Millisecond, limit: 10 * time.Second}
}

// next returns the action for a failed attempt and, for recoverJob, how
// long to wait before the next one.
func (p *retryPolicy) next(err error) (action, time.Duration) {
	p.attempts++
	if a := classify(err); a != recoverJob {
		return a, 0
	}
	if err.Error() == p.last {
		p.same++
		p.backoff = min(2*p.backoff, p.limit)
	} else {
		p.same, p.last, p.backoff = 1, err.Error(), p.first
	}
	if p.same >= p.max {
		return failJob, 0
	}
	return recoverJob, p.backoff
}
