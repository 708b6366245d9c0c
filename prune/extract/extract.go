// Package extract turns a UniPruning Γ into masks for any sparsity target
// in one shot (DESIGN §2.4): unstructured with uniform (per matrix or per
// row) or global allocation, or N:M. Extraction needs no forward pass: the
// masks depend on |Γ| only, and are applied to the ORIGINAL weights.
package extract

import (
	"errors"
	"fmt"
	"math"

	"github.com/unipruning/unipruning/prune"
)

// Allocations.
const (
	Uniform = "uniform"
	Global  = "global"
)

// Target is what a sparsity target asks for.
type Target struct {
	Sparsity   float64 // unstructured (M == 0)
	N, M       int     // N:M
	Allocation string  // uniform (default) or global; unstructured only
	ByRow      bool    // uniform: compare within rows
	// MaxMatrixSparsity caps any matrix under global allocation (0 = none).
	MaxMatrixSparsity float64
}

// Name is the output directory name of a target: sparsity-0.60, pattern-2of4.
func (t Target) Name() string {
	if t.M > 0 {
		return fmt.Sprintf("pattern-%dof%d", t.N, t.M)
	}
	return fmt.Sprintf("sparsity-%.2f", t.Sparsity)
}

// Validate checks a target.
func (t Target) Validate() error {
	if t.M > 0 {
		if t.N < 1 || t.N >= t.M {
			return fmt.Errorf("pattern %d:%d: need 1 ≤ N < M", t.N, t.M)
		}
		return nil
	}
	if !(t.Sparsity >= 0 && t.Sparsity < 1) {
		return fmt.Errorf("sparsity %v outside [0, 1)", t.Sparsity)
	}
	switch t.Allocation {
	case "", Uniform:
		if t.MaxMatrixSparsity != 0 {
			return fmt.Errorf("--max-layer-sparsity applies to the global allocation only")
		}
	case Global:
		if t.ByRow {
			return fmt.Errorf("--by-row applies to the uniform allocation only")
		}
		if c := t.MaxMatrixSparsity; c != 0 && !(c >= t.Sparsity && c < 1) {
			return fmt.Errorf("--max-layer-sparsity %v must be in [sparsity %v, 1)", c, t.Sparsity)
		}
	default:
		return fmt.Errorf("allocation %q (want uniform or global)", t.Allocation)
	}
	return nil
}

// Matrix is one target matrix's Γ, in canonical (layer, matrix) order.
type Matrix struct {
	Name    string
	Out, In int
	Gamma   []float32
}

// Result is the mask of one matrix; Dense marks a matrix left unpruned
// (N:M on a width that is not a multiple of M).
type Result struct {
	Mask   *prune.Mask
	Dense  bool
	Reason string
}

// Masks computes every matrix's mask for target t.
func Masks(ms []Matrix, t Target) ([]Result, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if t.M == 0 && t.Allocation == Global {
		return globalMasks(ms, t)
	}
	out := make([]Result, len(ms))
	for i, m := range ms {
		r, err := localMask(m, t)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Name, err)
		}
		out[i] = r
	}
	return out, nil
}

// localMask ranks |Γ| within the matrix (or row, or N:M group).
func localMask(m Matrix, t Target) (Result, error) {
	scores := absScores(m.Gamma)
	var mk *prune.Mask
	var err error
	switch {
	case t.M > 0:
		mk, err = prune.NM(scores, m.Out, m.In, t.N, t.M)
		if errors.Is(err, prune.ErrNotDivisible) {
			return denseResult(m, fmt.Sprintf("input width %d is not a multiple of %d", m.In, t.M)), nil
		}
	case t.ByRow:
		mk, err = prune.UnstructuredByRow(scores, m.Out, m.In, t.Sparsity)
	default:
		mk, err = prune.Unstructured(scores, m.Out, m.In, t.Sparsity)
	}
	return Result{Mask: mk}, err
}

func absScores(g []float32) []float32 {
	s := make([]float32, len(g))
	for i, v := range g {
		s[i] = float32(math.Abs(float64(v)))
	}
	return s
}

func denseResult(m Matrix, reason string) Result {
	mk := prune.NewMask(m.Out, m.In)
	for i := 0; i < m.Out; i++ {
		for j := 0; j < m.In; j++ {
			mk.Set(i, j, true)
		}
	}
	return Result{Mask: mk, Dense: true, Reason: reason}
}

// globalMasks keeps the largest (1−p) fraction of |Γ| over all matrices
// (each matrix's metric has mean 1, so they are comparable). With a cap,
// matrices that would exceed it are pruned to exactly the cap on their own
// ranking and the rest of the budget is re-allocated over the others,
// until no matrix exceeds the cap.
func globalMasks(ms []Matrix, t Target) ([]Result, error) {
	var total int
	for _, m := range ms {
		total += m.Out * m.In
	}
	keep := total - prune.PruneCount(total, t.Sparsity)
	out := make([]Result, len(ms))
	capped := make([]bool, len(ms))
	for {
		pool, budget := poolOf(ms, capped, out, keep)
		if budget < 0 {
			return nil, fmt.Errorf("the cap leaves more weights than the target allows")
		}
		masks, err := allocate(ms, pool, uint64(budget))
		if err != nil {
			return nil, err
		}
		over := false
		for j, i := range pool {
			out[i] = Result{Mask: masks[j]}
			if c := t.MaxMatrixSparsity; c > 0 && masks[j].Sparsity() > c+1e-12 {
				over, capped[i] = true, true
				if out[i], err = localMask(ms[i], Target{Sparsity: c}); err != nil {
					return nil, err
				}
			}
		}
		if !over {
			return out, nil
		}
	}
}

// poolOf lists the uncapped matrices and what remains of the keep budget.
func poolOf(ms []Matrix, capped []bool, out []Result, keep int) ([]int, int) {
	var pool []int
	for i := range ms {
		if capped[i] {
			keep -= out[i].Mask.Kept()
		} else {
			pool = append(pool, i)
		}
	}
	return pool, keep
}

// allocate keeps exactly keep of the pooled matrices' weights, ties by
// (matrix order, position).
func allocate(ms []Matrix, pool []int, keep uint64) ([]*prune.Mask, error) {
	parts := make([]prune.Partition, len(pool))
	sps := make([]prune.SlicePartition, len(pool))
	for j, i := range pool {
		sps[j] = prune.SlicePartition{Values: [][]float32{ms[i].Gamma}, Shapes: [][2]int{{ms[i].Out, ms[i].In}}, Names: []string{ms[i].Name}}
		parts[j] = sps[j]
	}
	a, err := prune.KeepLargest(parts, keep)
	if err != nil {
		return nil, err
	}
	masks := make([]*prune.Mask, len(pool))
	for j := range pool {
		mk, err := sps[j].MaskWith(a, j)
		if err != nil {
			return nil, err
		}
		masks[j] = mk[0]
	}
	return masks, nil
}
