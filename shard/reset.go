package shard

import "github.com/unipruning/unipruning/prune"

// Reset returns the worker to the state before step 1: the original
// weights reloaded from the checkpoint, Adam moments, z, Γ and first-step
// zeroed. A recovery that rolls back to "no checkpoint yet" uses it on
// shards that may hold state from an aborted attempt.
func (wk *Worker) Reset() error {
	wk.ts, wk.groups, wk.step = nil, map[int]*[4]*prune.Stats{}, 0
	return wk.load()
}
