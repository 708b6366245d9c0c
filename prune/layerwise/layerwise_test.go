package layerwise

import (
	"testing"

	"github.com/unipruning/unipruning/eval"
	"github.com/unipruning/unipruning/internal/shareddata"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/prune"
)

// capture records the input of every matrix of layer 0.
type capture struct{ x map[model.Matrix][]float32 }

func (c *capture) Observe(layer int, m model.Matrix, x []float32, rows, cols int) {
	if layer == 0 {
		c.x[m] = append(c.x[m], x[:rows*cols]...)
	}
}

func stories(t *testing.T) (*model.Checkpoint, [][]int32) {
	ck, err := model.Open(shareddata.Path(t, "models/stories260K/stories260K.bin"), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	tok, err := ck.LoadTokenizer()
	if err != nil {
		t.Fatal(err)
	}
	ws, _, err := eval.CalibWindows("lines", shareddata.Path(t, "text/tinystories/TinyStories-train-head-944K.txt"), tok, 16, 128, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ck, ws
}

// denseInputs loads the whole dense model and records layer 0's matrix
// inputs over the windows, one window at a time.
func denseInputs(t *testing.T, ck *model.Checkpoint, ws [][]int32) (*nn.Weights[float32], *capture) {
	t.Helper()
	w, err := nn.Load[float32](ck, nn.Whole(ck.Config))
	if err != nil {
		t.Fatal(err)
	}
	st := nn.NewStage(w)
	cap := &capture{x: map[model.Matrix][]float32{}}
	st.Observer = cap
	for _, win := range ws {
		if _, err := st.Forward(win, nil, 1, len(win), false); err != nil {
			t.Fatal(err)
		}
	}
	return w, cap
}

// outputError is ‖X·Wᵀ − X·Ŵᵀ‖² for the layer-0 inputs X of matrix m.
func outputError(x, w, what []float32, out, in int) float64 {
	rows := len(x) / in
	y, yh := make([]float32, rows*out), make([]float32, rows*out)
	nn.Gemm(false, true, rows, out, in, 1, x, in, w, in, 0, y, out)
	nn.Gemm(false, true, rows, out, in, 1, x, in, what, in, 0, yh, out)
	var e float64
	for i := range y {
		d := float64(y[i] - yh[i])
		e += d * d
	}
	return e
}

// TestSparseGPTBeatsWandaOnRealLayer: on stories260K's first layer, with
// the same calibration, SparseGPT's output reconstruction error is below
// Wanda's for every matrix; at 0% it leaves the weights unchanged.
func TestSparseGPTBeatsWandaOnRealLayer(t *testing.T) {
	ck, ws := stories(t)
	w, cap := denseInputs(t, ck, ws)
	pruned := map[Method]map[model.Matrix][]float32{}
	for _, m := range []Method{Wanda, SparseGPT} {
		pruned[m] = map[model.Matrix][]float32{}
		_, err := Run(ck, ws, Config{Method: m, Sparsity: 0.5, Batch: 4}, func(tg model.Target, wt []float32, _ *prune.Mask) error {
			if tg.Layer == 0 {
				pruned[m][tg.Matrix] = append([]float32(nil), wt...)
			}
			return nil
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	for mi := model.Matrix(0); mi < model.NumMatrices; mi++ {
		lin := w.Blocks[0].Lin[mi]
		// Layer 0's inputs are the same for both methods only for q/k/v,
		// gate/up and down up to the earlier matrices' pruning inside the
		// layer; statistics are collected on the dense layer, so compare
		// on the dense inputs.
		ew := outputError(cap.x[mi], lin.W, pruned[Wanda][mi], lin.Out, lin.In)
		es := outputError(cap.x[mi], lin.W, pruned[SparseGPT][mi], lin.Out, lin.In)
		if es >= ew {
			t.Errorf("%s: SparseGPT error %.4g not below Wanda's %.4g", mi, es, ew)
		}
		t.Logf("%-9s output error: sparsegpt %.4g, wanda %.4g", mi, es, ew)
	}
	// Sparsity 0: SparseGPT returns the weights unchanged.
	_, err := Run(ck, ws[:2], Config{Method: SparseGPT, Sparsity: 0, Batch: 2}, func(tg model.Target, wt []float32, _ *prune.Mask) error {
		w0, _ := ck.Read(tg.TensorName())
		for i := range w0 {
			if w0[i] != wt[i] {
				t.Fatalf("%s: weight %d changed at sparsity 0", tg, i)
			}
		}
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
}

// TestFixedMaskReconstruction: given Wanda's masks, the engine keeps them
// exactly and the OBS reconstruction lowers every layer-0 matrix's output
// error below Wanda's; given SparseGPT's own masks it reproduces
// SparseGPT's weights bit for bit through the whole model.
func TestFixedMaskReconstruction(t *testing.T) {
	ck, ws := stories(t)
	w, cap := denseInputs(t, ck, ws)
	type out struct {
		w    map[model.Target][]float32
		mask map[model.Target]*prune.Mask
	}
	runWith := func(cfg Config) out {
		o := out{w: map[model.Target][]float32{}, mask: map[model.Target]*prune.Mask{}}
		_, err := Run(ck, ws, cfg, func(tg model.Target, wt []float32, m *prune.Mask) error {
			o.w[tg], o.mask[tg] = append([]float32(nil), wt...), m
			return nil
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	fixed := func(o out) FixedMask {
		return func(tg model.Target) (*prune.Mask, bool, string, error) { return o.mask[tg], false, "", nil }
	}
	wanda := runWith(Config{Method: Wanda, Sparsity: 0.5, Batch: 4})
	rec := runWith(Config{Fixed: fixed(wanda), Batch: 4})
	for tg, m := range wanda.mask {
		if !rec.mask[tg].Equal(m) {
			t.Fatalf("%s: the fixed mask changed", tg)
		}
	}
	for mi := model.Matrix(0); mi < model.NumMatrices; mi++ {
		lin := w.Blocks[0].Lin[mi]
		tg := model.Target{Layer: 0, Matrix: mi}
		ew := outputError(cap.x[mi], lin.W, wanda.w[tg], lin.Out, lin.In)
		er := outputError(cap.x[mi], lin.W, rec.w[tg], lin.Out, lin.In)
		t.Logf("%-9s output error: wanda %.4g, wanda mask + OBS %.4g", mi, ew, er)
		if er >= ew {
			t.Errorf("%s: reconstructed error %.4g not below the mask-only %.4g", mi, er, ew)
		}
	}
	sgpt := runWith(Config{Method: SparseGPT, N: 2, M: 4, Batch: 4})
	again := runWith(Config{Fixed: fixed(sgpt), Batch: 4})
	for tg, wt := range sgpt.w {
		for i := range wt {
			if wt[i] != again.w[tg][i] {
				t.Fatalf("%s: weight %d %v with SparseGPT, %v with its mask fixed", tg, i, wt[i], again.w[tg][i])
			}
		}
	}
}

// TestFootprintOfFixedMask: reconstructing a fixed mask collects the same
// Hessians and runs the same solve as SparseGPT, and the estimate says so.
func TestFootprintOfFixedMask(t *testing.T) {
	c := &model.Config{Layers: 2, Dim: 64, Hidden: 96, Heads: 4, KVHeads: 2, HeadDim: 16, Vocab: 101, MaxSeq: 64}
	fixed := func(model.Target) (*prune.Mask, bool, string, error) { return nil, false, "", nil }
	f := EstimateFootprint(c, 8, 32, Config{Fixed: fixed})
	s := EstimateFootprint(c, 8, 32, Config{Method: SparseGPT})
	w := EstimateFootprint(c, 8, 32, Config{Method: Wanda})
	if f.Statistics != s.Statistics || f.Solve != s.Solve || f.Statistics <= w.Statistics {
		t.Fatalf("fixed mask: statistics %d, solve %d; SparseGPT %d, %d; Wanda %d, %d",
			f.Statistics, f.Solve, s.Statistics, s.Solve, w.Statistics, w.Solve)
	}
}
