package main

import (
	"context"
	"os"
	"path/filepath"

	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/provenance"
	"github.com/unipruning/unipruning/prune/gammastore"
	"github.com/unipruning/unipruning/shard"
)

// searchManifest describes a finished search for its Γ store, with the
// calibration data it drew and this machine.
func searchManifest(spec job.Spec, ck *model.Checkpoint, steps map[int]job.StepFacts, resumed int) (*gammastore.Manifest, error) {
	man, err := gammastore.NewManifest(spec, ck, steps, resumed)
	if err != nil {
		return nil, err
	}
	man.Machine = provenance.ThisMachine(nn.ActiveKernel())
	if man.Calibration, err = shard.Calibration(spec); err != nil {
		// A coordinator need not see the calibration file the shards read.
		logf("note: the Γ manifest does not describe the calibration data: %v", err)
	}
	return man, nil
}

// partRefs pairs the shards' Γ parts with the layers they cover.
func partRefs(refs []job.Ref, parts []nn.Part) []gammastore.PartRef {
	out := make([]gammastore.PartRef, len(refs))
	for i, r := range refs {
		out[i] = gammastore.PartRef{Ref: r, Layers: [2]int{parts[i].From, parts[i].To}}
	}
	return out
}

// gammaWriter returns the coordinator's Finish: publish the Γ store into
// out and its manifest into the blob store (its parts are there already,
// keyed by their sha256), so `unipruning fetch` can rebuild it anywhere.
func gammaWriter(out string, blobs gammastore.Blobs) func(ctx context.Context, spec job.Spec, refs []job.Ref, parts []nn.Part, steps map[int]job.StepFacts) (map[string]string, error) {
	return func(ctx context.Context, spec job.Spec, refs []job.Ref, parts []nn.Part, steps map[int]job.StepFacts) (map[string]string, error) {
		ck, err := model.Open(spec.Model, spec.Tokenizer)
		if err != nil {
			return nil, err
		}
		defer ck.Close()
		man, err := searchManifest(spec, ck, steps, 0)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(out, 0o755); err != nil {
			return nil, err
		}
		if err := writeJSONFile(filepath.Join(out, "spec.json"), spec); err != nil {
			return nil, err
		}
		key, err := gammastore.Publish(ctx, blobs, out, man, partRefs(refs, parts))
		if err != nil {
			return nil, err
		}
		return map[string]string{"gamma_manifest": key}, nil
	}
}
