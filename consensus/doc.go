// Package consensus keeps the small, authoritative facts of a pruning job in
// Raft: the job spec, shard membership, the layer assignment and its epoch,
// per-step scalars (learning rate, gradient norm, threshold τ, acks),
// checkpoint manifests and the final status. Tensors never pass through here.
//
// It is the only package that imports hashicorp/raft. Everything a caller
// needs is expressed in this package's own types: a [Command] envelope with a
// typed payload is proposed with [Node.Apply], and the replicated [State] is
// read with [Node.State]. The [FSM] can also be driven directly (tests, tools).
//
// Commands are idempotent by ID: the FSM remembers the last [DedupWindow]
// applied IDs (snapshots included), so a client that lost a reply — for
// example across a leader failover — can retry the same command safely.
// Commands that act for an assignment carry its epoch, and the FSM rejects
// those from an older epoch with [ErrStaleEpoch]; this fences shards that were
// declared dead and replaced.
package consensus
