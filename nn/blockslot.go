package nn

import "github.com/unipruning/unipruning/model"

// ReadBlockInto refills blk, a block loaded earlier from the same
// checkpoint (any layer: all layers have the same shapes), with decoder
// layer l. Streaming code keeps one such slot and reuses it for every
// layer, so the heap holds one layer's weights however many it visits.
func ReadBlockInto(ck *model.Checkpoint, l int, blk *Block[float32]) error {
	for _, t := range blockTensors(ck.Config, l, blk) {
		if err := ck.ReadInto(t.name, *t.dst); err != nil {
			return err
		}
	}
	return nil
}
