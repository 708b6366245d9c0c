// Package coordinator drives a search job: it plans which shard owns which
// layers, runs the step loop (on the Raft leader in a cluster), reduces the
// gradient norm and selects the model-wide threshold across shards, records
// checkpoints, and recovers from failures by rolling back to the newest
// step checkpointed by every shard.
package coordinator

import (
	"fmt"

	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/nn"
)

// Plan splits the decoder layers of c into n contiguous ranges whose
// parameter counts (layers, plus the embedding on the first and the
// untied head on the last) are as balanced as possible: it minimises the
// largest range.
func Plan(c *model.Config, n int) ([]nn.Part, error) {
	if n < 1 || n > c.Layers {
		return nil, fmt.Errorf("cannot split %d layers over %d shards", c.Layers, n)
	}
	layer := int64(0)
	for m := model.Matrix(0); m < model.NumMatrices; m++ {
		o, i := m.Shape(c)
		layer += int64(o * i)
	}
	layer += int64(2 * c.Dim)
	embed := int64(c.Vocab * c.Dim)
	head := int64(c.Dim)
	if !c.TiedHead {
		head += int64(c.Vocab * c.Dim)
	}
	cost := func(from, to int) int64 {
		v := int64(to-from) * layer
		if from == 0 {
			v += embed
		}
		if to == c.Layers {
			v += head
		}
		return v
	}
	lo, hi := int64(0), cost(0, c.Layers)
	for lo < hi { // smallest max-load for which a greedy split fits in n
		mid := (lo + hi) / 2
		if _, ok := greedySplit(c.Layers, n, mid, cost); ok {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	bounds, _ := greedySplit(c.Layers, n, lo, cost)
	parts := make([]nn.Part, n)
	for i := range parts {
		parts[i] = nn.Part{From: bounds[i], To: bounds[i+1], Embed: i == 0, Head: i == n-1}
	}
	return parts, nil
}

// greedySplit cuts layers into exactly n non-empty ranges of cost ≤ limit,
// taking as many layers as fit while leaving one per remaining range.
func greedySplit(layers, n int, limit int64, cost func(a, b int) int64) ([]int, bool) {
	bounds := []int{0}
	from := 0
	for s := 0; s < n; s++ {
		left := n - s - 1
		to := from + 1
		if cost(from, to) > limit {
			return nil, false
		}
		for to < layers-left && cost(from, to+1) <= limit {
			to++
		}
		if s == n-1 && to != layers {
			return nil, false
		}
		bounds = append(bounds, to)
		from = to
	}
	return bounds, true
}
