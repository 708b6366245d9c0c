package job

import (
	"errors"
	"fmt"
)

// Class sorts a failure by what can fix it (issue 12 class 1): the
// coordinator fails a job at once on invalid input and permanent errors,
// and retries transient ones with a bounded, per-cause backoff.
type Class int

const (
	// Transient: may succeed when retried (a shard restarted, a timeout,
	// a network partition).
	Transient Class = iota
	// Permanent: retrying the same job cannot succeed (a bug, an
	// inconsistent store), but the input is not to blame.
	Permanent
	// InvalidInput: the job itself is wrong (a missing or unparsable file,
	// a bad format, seqlen over the model's context): fix it and resubmit.
	InvalidInput
)

// String is the class's name in status, logs and Raft.
func (c Class) String() string {
	switch c {
	case Permanent:
		return "permanent"
	case InvalidInput:
		return "invalid_input"
	}
	return "transient"
}

// ClassedError carries its class through wrapping.
type ClassedError struct {
	Class Class
	Err   error
}

func (e *ClassedError) Error() string { return e.Err.Error() }
func (e *ClassedError) Unwrap() error { return e.Err }

// Invalid marks err as an input error (nil stays nil).
func Invalid(err error) error { return classed(InvalidInput, err) }

// Invalidf is Invalid(fmt.Errorf(...)).
func Invalidf(format string, args ...any) error { return Invalid(fmt.Errorf(format, args...)) }

// Permanentf marks a new error as permanent.
func Permanentf(format string, args ...any) error {
	return classed(Permanent, fmt.Errorf(format, args...))
}

// MarkPermanent marks err as permanent (nil stays nil).
func MarkPermanent(err error) error { return classed(Permanent, err) }

func classed(c Class, err error) error {
	if err == nil {
		return nil
	}
	return &ClassedError{Class: c, Err: err}
}

// ClassOf is the class of the outermost classed error in err's chain;
// an unclassed error is transient.
func ClassOf(err error) Class {
	var ce *ClassedError
	if errors.As(err, &ce) {
		return ce.Class
	}
	return Transient
}
