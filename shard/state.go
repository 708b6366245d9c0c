package shard

import (
	"fmt"
	"strconv"

	"github.com/unipruning/unipruning/prune/statefile"
)

// Checkpoint serialises the shard's full search state after its last
// applied step: per target W^k, Adam moments, z, Γ and first-step. The
// generators need no state: they are derived from (seed, step, layer,
// matrix).
func (wk *Worker) Checkpoint() ([]byte, error) {
	var ts []statefile.Tensor
	for _, tg := range wk.ts {
		n := tg.t.TensorName()
		shape := []int{tg.lin.Out, tg.lin.In}
		ts = append(ts,
			statefile.Tensor{Name: n + "/z", Shape: shape, F32: tg.mir.Z},
			statefile.Tensor{Name: n + "/gamma", Shape: shape, F32: tg.mir.Gamma},
			statefile.Tensor{Name: n + "/first", Shape: shape, I32: tg.mir.First})
		if wk.spec.Trains() {
			ts = append(ts,
				statefile.Tensor{Name: n + "/w", Shape: shape, F32: tg.lin.W},
				statefile.Tensor{Name: n + "/m", Shape: shape, F32: tg.m},
				statefile.Tensor{Name: n + "/v", Shape: shape, F32: tg.v})
		}
	}
	return statefile.Encode(ts, wk.stateMeta())
}

func (wk *Worker) stateMeta() map[string]string {
	return map[string]string{
		"kind": "checkpoint", "step": strconv.Itoa(wk.step), "spec": wk.spec.Hash(),
		"from": strconv.Itoa(wk.part.From), "to": strconv.Itoa(wk.part.To),
	}
}

// Restore replaces the shard's state with a checkpoint image taken by a
// shard that owned the same layers under the same spec.
func (wk *Worker) Restore(img []byte) error {
	d, err := statefile.Decode(img)
	if err != nil {
		return err
	}
	md := d.Meta
	if md["kind"] != "checkpoint" || md["spec"] != wk.spec.Hash() {
		return fmt.Errorf("checkpoint belongs to another job (spec %.12s, this job %.12s)", md["spec"], wk.spec.Hash())
	}
	if md["from"] != strconv.Itoa(wk.part.From) || md["to"] != strconv.Itoa(wk.part.To) {
		return fmt.Errorf("checkpoint covers layers [%s,%s), this shard owns [%d,%d)", md["from"], md["to"], wk.part.From, wk.part.To)
	}
	step, err := strconv.Atoi(md["step"])
	if err != nil {
		return fmt.Errorf("checkpoint has no step")
	}
	// Check every tensor before copying any, so a bad image never leaves
	// the state half-overwritten.
	for _, tg := range wk.ts {
		if err := wk.restoreTarget(tg, d, false); err != nil {
			return err
		}
	}
	for _, tg := range wk.ts {
		wk.restoreTarget(tg, d, true)
	}
	wk.step = step
	return nil
}

// restoreTarget checks (and, with apply, copies) one target's tensors.
func (wk *Worker) restoreTarget(tg *target, d *statefile.Decoded, apply bool) error {
	n := tg.t.TensorName()
	get := func(suffix string, f32 []float32, i32 []int32) error {
		t, ok := d.Tensors[n+suffix]
		if !ok {
			return fmt.Errorf("checkpoint lacks %s%s", n, suffix)
		}
		if f32 != nil && len(t.F32) == len(f32) {
			if apply {
				copy(f32, t.F32)
			}
			return nil
		}
		if i32 != nil && len(t.I32) == len(i32) {
			if apply {
				copy(i32, t.I32)
			}
			return nil
		}
		return fmt.Errorf("checkpoint tensor %s%s has the wrong size or type", n, suffix)
	}
	if err := get("/z", tg.mir.Z, nil); err != nil {
		return err
	}
	if err := get("/gamma", tg.mir.Gamma, nil); err != nil {
		return err
	}
	if err := get("/first", nil, tg.mir.First); err != nil {
		return err
	}
	if !wk.spec.Trains() {
		return nil
	}
	for _, p := range []struct {
		s string
		v []float32
	}{{"/w", tg.lin.W}, {"/m", tg.m}, {"/v", tg.v}} {
		if err := get(p.s, p.v, nil); err != nil {
			return err
		}
	}
	return nil
}

// GammaPart serialises Γ and first-step of the owned targets for the Γ
// store that extraction reads.
func (wk *Worker) GammaPart() ([]byte, error) {
	var ts []statefile.Tensor
	for _, tg := range wk.ts {
		n := tg.t.TensorName()
		shape := []int{tg.lin.Out, tg.lin.In}
		ts = append(ts,
			statefile.Tensor{Name: n + "/gamma", Shape: shape, F32: tg.mir.Gamma},
			statefile.Tensor{Name: n + "/first", Shape: shape, I32: tg.mir.First})
	}
	md := wk.stateMeta()
	md["kind"] = "gamma"
	return statefile.Encode(ts, md)
}
