package shard

import (
	"runtime"

	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/nn"
)

// MemItem is one line of a memory plan: what it is and its bytes.
type MemItem struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
	// PerParam is Bytes over the parameters the plan covers.
	PerParam float64 `json:"bytes_per_param"`
}

// ShardMemory is the plan of one shard: its layers [from, to), the
// parameters it owns and its bytes, item by item.
type ShardMemory struct {
	Layers [2]int    `json:"layers"`
	Params int64     `json:"params"` // held by this shard (a tied embedding counts on both ends)
	Bytes  int64     `json:"bytes"`
	Items  []MemItem `json:"items"`
}

// MemoryPlan is the memory a search needs, computed from the model's
// shapes and the spec before anything is allocated (issue 14 item 1).
// Bytes are what the worker allocates: its steady state during steps plus
// the largest transient (a checkpoint or Γ image being built); the Go
// runtime may keep up to GCHeadroom more as garbage not yet collected.
type MemoryPlan struct {
	Params        int64         `json:"params"`
	BytesPerParam float64       `json:"bytes_per_param"`
	BytesTotal    int64         `json:"bytes_total"`
	PerShard      []ShardMemory `json:"per_shard"`
	Items         []MemItem     `json:"items"` // summed over shards, in plan order
	GCHeadroom    float64       `json:"gc_headroom"`
}

// PlanMemory accounts the search of spec on a model of config c split
// into parts, with workers goroutines per shard (0: GOMAXPROCS).
func PlanMemory(c *model.Config, spec job.Spec, parts []nn.Part, workers int) MemoryPlan {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	plan := MemoryPlan{GCHeadroom: float64(gcPercent) / 100}
	sums := map[string]int64{}
	var order []string
	for _, p := range parts {
		sm := planShard(c, spec, p, workers)
		plan.PerShard = append(plan.PerShard, sm)
		plan.BytesTotal += sm.Bytes
		for _, it := range sm.Items {
			if _, ok := sums[it.Name]; !ok {
				order = append(order, it.Name)
			}
			sums[it.Name] += it.Bytes
		}
	}
	// Shards of a tied-head model both hold the embedding: the model's
	// parameters are counted once, from the whole.
	plan.Params = planShard(c, spec, nn.Whole(c), workers).Params
	for _, n := range order {
		plan.Items = append(plan.Items, MemItem{Name: n, Bytes: sums[n], PerParam: perParam(sums[n], plan.Params)})
	}
	plan.BytesPerParam = perParam(plan.BytesTotal, plan.Params)
	return plan
}

func perParam(b, params int64) float64 {
	if params == 0 {
		return 0
	}
	return float64(b) / float64(params)
}

// planShard mirrors what NewWorker, nn.Stage and the step allocate for
// part p. The items' names are stable: tests and the dry run print them.
func planShard(c *model.Config, spec job.Spec, p nn.Part, workers int) ShardMemory {
	const f32 = 4
	var targets, largest, other, stats int64
	layerMat, layerOther := c.LayerParams()
	for m := model.Matrix(0); m < model.NumMatrices; m++ {
		out, in := m.Shape(c)
		largest = max(largest, int64(out)*int64(in))
	}
	if layers := int64(p.To - p.From); layers > 0 {
		targets, other = layers*layerMat, layers*layerOther
		stats = layers * 8 * int64(2*c.Dim+c.QDim()+c.Hidden) // prune.Stats per input group, float64
	} else {
		largest = 0
	}
	embed := int64(c.Vocab) * int64(c.Dim)
	if p.Embed || (p.Head && c.TiedHead) {
		other += embed
	}
	if p.Head {
		other += int64(c.Dim)
		if !c.TiedHead {
			other += embed
		}
	}
	train := spec.Trains()
	var it []MemItem
	add := func(name string, b int64) {
		if b > 0 {
			it = append(it, MemItem{Name: name, Bytes: b})
		}
	}
	add("weights (target matrices)", f32*targets)
	add("weights (embedding, norms, biases, head)", f32*other)
	if train {
		add("gradients (target matrices)", f32*targets)
		add("Adam m", f32*targets)
		add("Adam v", f32*targets)
	}
	add("z", f32*targets)
	add("Γ", f32*targets)
	add("first step (int32)", f32*targets)
	add("scores (one matrix per goroutine)", f32*largest*int64(min(workers, (p.To-p.From)*int(model.NumMatrices))))
	add("activation statistics", stats)
	sm := stageMemory(c, spec, p, workers)
	add("activations (layer inputs kept for backward)", sm.Activations)
	add("workspace (layer, attention, head)", sm.Workspace)
	if p.Embed || p.Head {
		add("calibration windows", 4*int64(spec.Steps)*int64(spec.Seqlen))
	}
	// The largest transient: a state image is built whole in memory
	// (statefile.Encode); zstd barely shrinks float32 weights and moments,
	// so the bound is the raw size of its tensors.
	img := f32 * 2 * targets // Γ part: Γ and first
	if spec.CheckpointEvery > 0 && spec.CheckpointEvery < spec.Steps {
		n := int64(3) // z, Γ, first
		if train {
			n = 6 // and W, m, v
		}
		img = max(img, f32*n*targets)
	}
	add("state image being built (transient: checkpoint or Γ part)", img)
	sm2 := ShardMemory{Layers: [2]int{p.From, p.To}, Params: targets + other, Items: it}
	for i := range it {
		sm2.Bytes += it[i].Bytes
		it[i].PerParam = perParam(it[i].Bytes, sm2.Params)
	}
	return sm2
}
