// Package prune holds the numerical core of unipruning's pruning: activation
// statistics, saliency metrics, keep-masks, exact selection over partitioned
// data, and the layer-wise reconstruction baselines.
//
// It is a pure library: no I/O, no networking, no goroutines it does not own.
//
// # Layout
//
// Weights, scores and masks are row-major out×in: element (i, j) of a matrix
// is at flat index i*in+j, row i being an output unit and column j an input
// channel. Activation statistics are indexed by input channel j.
//
// # Ranking and ties (DESIGN §2.4)
//
// A lower score is pruned first. Scores are compared by value, so −0 and +0
// are equal, −Inf is the lowest and +Inf the highest score; NaN is rejected
// with an error. Among equal scores the entry with the lower position is
// pruned first: within a matrix the position is the flat index, within a
// Partition it is (matrix order, flat index), and across partitions it is
// the partition order. Callers order partitions and matrices by
// (layer, matrix), which makes every mask a deterministic function of the
// scores.
//
// Masks of UniPruning's Γ rank |Γ|: pass |Γ| to the per-matrix functions;
// the selection functions (SelectKth, Threshold, KeepLargest) rank |x|
// themselves through Key.
//
// # Determinism (DESIGN §2.7)
//
// Every function is a pure function of its arguments (and, for StochRIA, of
// the generator's state). Floating-point sums are taken in float64 in a fixed
// order that this package documents per function; selection is done on
// integer keys, so its result does not depend on how values are partitioned.
package prune
