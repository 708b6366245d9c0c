package main

import (
	"fmt"

	"github.com/unipruning/unipruning/internal/sysmem"
	"github.com/unipruning/unipruning/prune/gammastore"
	"github.com/unipruning/unipruning/shard"
	"github.com/unipruning/unipruning/shardrpc"
)

// printMemoryPlan prints `search --dry-run`: the plan as JSON, or as a
// table of items (bytes, bytes per parameter) per shard and in total.
func printMemoryPlan(p shard.MemoryPlan, asJSON bool) error {
	if asJSON {
		return printJSON(p)
	}
	row := func(name, bytes, mib, per string) { fmt.Printf("%-60s %14s %10s %12s\n", name, bytes, mib, per) }
	row("item", "bytes", "MiB", "bytes/param")
	for _, it := range p.Items {
		row(it.Name, fmt.Sprint(it.Bytes), fmt.Sprintf("%.1f", float64(it.Bytes)/(1<<20)), fmt.Sprintf("%.2f", it.PerParam))
	}
	row(fmt.Sprintf("total (%d parameters)", p.Params), fmt.Sprint(p.BytesTotal),
		fmt.Sprintf("%.1f", float64(p.BytesTotal)/(1<<20)), fmt.Sprintf("%.2f", p.BytesPerParam))
	if len(p.PerShard) > 1 {
		fmt.Println()
		for i, s := range p.PerShard {
			fmt.Printf("shard %d: layers [%d,%d), %d parameters, %.1f MiB\n", i, s.Layers[0], s.Layers[1], s.Params, float64(s.Bytes)/(1<<20))
		}
	}
	fmt.Printf("\nThe Go runtime may hold up to %.0f%% more as garbage not yet collected (GOGC).\n", 100*p.GCHeadroom)
	return nil
}

// localResources collects what an in-process search cost: the phases of
// every worker per step (the shards run one after another within a step,
// so their phases add up; "other" is the rest of the step's wall time:
// the driver, the ledger, the pipes), the process's peak RSS and the plan.
// It logs them too.
func localResources(apis []shardrpc.API, plan shard.MemoryPlan, stepSeconds float64) *gammastore.Resources {
	var ph shard.Phases
	for _, a := range apis {
		if l, ok := a.(*shard.Local); ok && l.Worker() != nil {
			ph = ph.Add(l.Worker().Phases())
		}
	}
	r := &gammastore.Resources{}
	for _, s := range plan.PerShard {
		r.PlannedBytes = append(r.PlannedBytes, s.Bytes)
	}
	if rss, err := sysmem.PeakRSS(); err == nil {
		r.PeakRSS = []uint64{rss} // one process holds every shard
		logf("peak RSS %s; the memory plan predicts %s (+%.0f%% GC headroom)", gib(rss), gib(uint64(plan.BytesTotal)), 100*plan.GCHeadroom)
	}
	if ph.Steps > 0 {
		per := ph.PerStep()
		other := max(0, stepSeconds/float64(ph.Steps)-per.Total())
		r.PhaseSeconds = map[string]float64{"forward": per.Forward, "backward": per.Backward, "metric": per.Metric,
			"optimizer": per.Optimizer, "z_gamma": per.Mirror, "threshold": per.Threshold, "other": other}
		logf("per step: forward %.3fs, backward %.3fs, metric %.3fs, optimizer %.3fs, z/Γ %.3fs, threshold %.3fs, other %.3fs",
			per.Forward, per.Backward, per.Metric, per.Optimizer, per.Mirror, per.Threshold, other)
	}
	return r
}
