package nn

import "github.com/unipruning/unipruning/model"

// ReadBlockInto refills blk, a block loaded earlier from the same
// checkpoint (any layer: all layers have the same shapes), with decoder
// layer l. Streaming code keeps one such slot and reuses it for every
// layer, so the heap holds one layer's weights however many it visits.
func ReadBlockInto(ck *model.Checkpoint, l int, blk *Block[float32]) error {
	c := ck.Config
	names := []string{model.AttnNormName(l), model.MLPNormName(l)}
	dsts := [][]float32{blk.AttnNorm, blk.MLPNorm}
	if c.QKNorm {
		names = append(names, model.QNormName(l), model.KNormName(l))
		dsts = append(dsts, blk.QNorm, blk.KNorm)
	}
	for m := model.Matrix(0); m < model.NumMatrices; m++ {
		t := model.Target{Layer: l, Matrix: m}
		names, dsts = append(names, t.TensorName()), append(dsts, blk.Lin[m].W)
		if blk.Lin[m].B != nil {
			names, dsts = append(names, t.BiasName()), append(dsts, blk.Lin[m].B)
		}
	}
	for i, name := range names {
		if err := ck.ReadInto(name, dsts[i]); err != nil {
			return err
		}
	}
	return nil
}
