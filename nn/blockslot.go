package nn

import (
	"fmt"

	"github.com/unipruning/unipruning/model"
)

// MoveLayer refills w, weights that own exactly one decoder layer (loaded
// from ck), with decoder layer l of ck in place, and makes w own layer l.
// Streaming code keeps one such slot and moves it through the layers, so
// the heap holds one layer's weights however many it visits; all layers
// have the same shapes, so no buffer is allocated.
func MoveLayer(ck *model.Checkpoint, w *Weights[float32], l int) error {
	if w.To != w.From+1 {
		return fmt.Errorf("nn: MoveLayer on weights of layers [%d,%d), want one layer", w.From, w.To)
	}
	blk := w.Blocks[w.From]
	for _, t := range blockTensors(ck.Config, l, blk) {
		if err := ck.ReadInto(t.name, *t.dst); err != nil {
			return err
		}
	}
	w.Blocks[w.From], w.Blocks[l] = nil, blk
	w.From, w.To = l, l+1
	return nil
}
