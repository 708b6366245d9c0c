package main

import (
	"fmt"

	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
)

// resolveSpec fills the spec's defaults against the model (whose
// tokenizer must load too).
func resolveSpec(spec job.Spec) (job.Spec, error) {
	l, err := openModel(spec.Model, spec.Tokenizer, false)
	if err != nil {
		return spec, err
	}
	defer l.ck.Close()
	return completeSpec(spec, l.ck.Config)
}

// completeSpec resolves the window length against the model's context and
// fills and checks the rest of the spec.
func completeSpec(spec job.Spec, c *model.Config) (job.Spec, error) {
	var err error
	if spec.Seqlen, err = windowLength(spec.Seqlen, c); err != nil {
		return spec, err
	}
	spec.Defaults()
	if err := spec.Validate(); err != nil {
		return spec, usageError{fmt.Errorf("search settings: %w", err)}
	}
	return spec, nil
}
