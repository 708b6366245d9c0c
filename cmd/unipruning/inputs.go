package main

import (
	"fmt"

	"github.com/unipruning/unipruning/coordinator"
	"github.com/unipruning/unipruning/eval"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
)

// checkInputs validates what a search job reads before anything runs
// (issue 12 class 1): the spec's own rules, the model and its tokenizer
// open, seqlen fits the model's context, and the calibration file exists
// and yields the job's windows in its format. The error is classed
// job.InvalidInput: no retry can fix it, so the job fails at once (exit
// status 2) instead of being retried.
func checkInputs(spec job.Spec) error {
	spec.Defaults()
	if err := spec.Validate(); err != nil {
		return err
	}
	l, err := openModel(spec.Model, spec.Tokenizer, false)
	if err != nil {
		return job.Invalid(fmt.Errorf("model: %w", err))
	}
	defer l.ck.Close()
	if c := l.ck.Config; spec.Seqlen > c.MaxSeq {
		return job.Invalidf("seqlen %d exceeds the model's context of %d tokens", spec.Seqlen, c.MaxSeq)
	}
	if _, _, err := eval.CalibWindows(spec.CalibFormat, spec.CalibPath, l.tok, spec.Steps, spec.Seqlen, spec.Seed); err != nil {
		return job.Invalid(err)
	}
	return nil
}

// checkJob is checkInputs for a cluster job (the coordinator's
// NodeConfig.Check), plus its layers' split over the shards.
func checkJob(j *job.Job) error {
	if err := checkInputs(j.Spec); err != nil {
		return err
	}
	ck, err := model.Open(j.Spec.Model, j.Spec.Tokenizer)
	if err != nil {
		return job.Invalid(err)
	}
	defer ck.Close()
	if _, err := coordinator.PlanSpec(ck.Config, j.Shards, j.Spec); err != nil {
		return job.Invalid(fmt.Errorf("shards: %w", err))
	}
	return nil
}
