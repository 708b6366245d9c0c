package layerwise

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/model/safetensors"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/prune"
)

// engine holds the calibration activations between layers.
type engine struct {
	ck      *model.Checkpoint
	cfg     Config
	windows [][]int32
	t       int
	// x holds the current layer's inputs for all windows; each batch's
	// outputs replace its inputs in place (Forward copies its input first).
	x []float32
	// st runs the current layer: one stage over one layer slot for all
	// layers, so neither the weights nor the stage's workspace are
	// allocated again per layer.
	st *nn.Stage[float32]
}

func newEngine(ck *model.Checkpoint, windows [][]int32, cfg Config) (*engine, error) {
	c := ck.Config
	e := &engine{ck: ck, cfg: cfg, windows: windows, t: len(windows[0])}
	n := len(windows) * e.t * c.Dim
	e.x = make([]float32, n)
	w, err := nn.Load[float32](ck, nn.Part{Embed: true})
	if err != nil {
		return nil, err
	}
	st := nn.NewStage(w)
	err = e.batches(func(i, b int, toks []int32) error {
		h, err := st.Forward(toks, nil, b, e.t, false)
		copy(e.x[i*e.t*c.Dim:], h)
		return err
	})
	// The embedding is garbage now: collect it before the first layer is
	// allocated, so that layer reuses its memory instead of adding to it.
	runtime.GC()
	return e, err
}

// batches calls f for consecutive groups of windows: i is the first
// window, b how many, toks their concatenated ids.
func (e *engine) batches(f func(i, b int, toks []int32) error) error {
	var toks []int32
	for i := 0; i < len(e.windows); i += e.cfg.Batch {
		b := min(e.cfg.Batch, len(e.windows)-i)
		toks = toks[:0]
		for _, w := range e.windows[i : i+b] {
			if len(w) != e.t {
				return fmt.Errorf("calibration windows differ in length (%d vs %d)", len(w), e.t)
			}
			toks = append(toks, w...)
		}
		if err := f(i, b, toks); err != nil {
			return err
		}
	}
	return nil
}

// layer collects statistics for layer l, prunes it and recomputes its
// outputs with the pruned weights.
func (e *engine) layer(l int, sink Sink) (LayerResult, error) {
	c := e.ck.Config
	st, err := e.loadLayer(l)
	if err != nil {
		return LayerResult{}, err
	}
	w := st.W
	col := newCollector(c, e.cfg.solves(), e.t)
	st.Observer = col
	d := c.Dim
	run := func(keep bool) error {
		return e.batches(func(i, b int, _ []int32) error {
			off := i * e.t * d
			h, err := st.Forward(nil, e.x[off:off+b*e.t*d], b, e.t, false)
			if keep {
				copy(e.x[off:], h)
			}
			return err
		})
	}
	if err := run(false); err != nil {
		return LayerResult{}, err
	}
	res := LayerResult{Layer: l}
	for m := model.Matrix(0); m < model.NumMatrices; m++ {
		lin := &w.Blocks[l].Lin[m]
		t := model.Target{Layer: l, Matrix: m}
		mr, mask, err := e.pruneMatrix(t, lin, col)
		if err != nil {
			return res, fmt.Errorf("%s: %w", t, err)
		}
		roundToStorage(lin.W, c.DType)
		if err := sink(t, lin.W, mask); err != nil {
			return res, err
		}
		res.Matrices = append(res.Matrices, mr)
	}
	st.Observer = nil
	if err := run(true); err != nil {
		return res, err
	}
	return res, nil
}

// loadLayer reads layer l into the engine's one layer slot (allocated for
// the first layer, refilled for each next one) and returns the stage over
// it, so memory holds one layer's weights and one workspace, not one per
// layer until the garbage collector runs.
func (e *engine) loadLayer(l int) (*nn.Stage[float32], error) {
	if e.st == nil {
		w, err := nn.Load[float32](e.ck, nn.Part{From: l, To: l + 1})
		if err != nil {
			return nil, err
		}
		e.st = nn.NewStage(w)
		return e.st, nil
	}
	if err := nn.MoveLayer(e.ck, e.st.W, l); err != nil {
		return nil, err
	}
	return e.st, nil
}

// pruneMatrix prunes one matrix in place and returns its report and mask.
func (e *engine) pruneMatrix(t model.Target, lin *nn.Linear[float32], col *collector) (MatrixResult, *prune.Mask, error) {
	out, in := lin.Out, lin.In
	r := MatrixResult{Name: t.TensorName(), Out: out, In: in}
	var mask *prune.Mask
	var err error
	if e.cfg.Fixed != nil {
		return e.reconstruct(t, lin, col.hessian(t.Matrix), r)
	}
	if e.cfg.Method == SparseGPT {
		mask, err = e.sparseGPT(lin, col.hessian(t.Matrix))
	} else {
		mask, err = e.scoreMask(lin, col.stats(t.Matrix))
	}
	if errors.Is(err, prune.ErrNotDivisible) || errors.Is(err, prune.ErrNMNotDivisible) {
		r.Dense, r.Reason = true, fmt.Sprintf("input width %d is not a multiple of %d", in, e.cfg.M)
		mask, err = prune.NewMask(out, in), nil
		fillMask(mask)
	}
	if err != nil {
		return r, nil, err
	}
	mask.Apply(lin.W)
	r.Kept = mask.Kept()
	r.Sparsity = 1 - float64(r.Kept)/float64(out*in)
	return r, mask, nil
}

// reconstruct takes the target's fixed mask and, unless it is dense,
// updates the kept weights with the OBS solve for that mask.
func (e *engine) reconstruct(t model.Target, lin *nn.Linear[float32], h *prune.Hessian, r MatrixResult) (MatrixResult, *prune.Mask, error) {
	out, in := lin.Out, lin.In
	mask, dense, reason, err := e.cfg.Fixed(t)
	if err != nil {
		return r, nil, err
	}
	if mask == nil || mask.Out != out || mask.In != in {
		return r, nil, fmt.Errorf("fixed mask does not fit the %d×%d matrix", out, in)
	}
	if dense {
		r.Dense, r.Reason = true, reason
	} else {
		if _, err := prune.SparseGPT(lin.W, out, in, h, prune.SparseGPTConfig{
			Mask: mask, BlockSize: e.cfg.BlockSize, PercDamp: e.cfg.PercDamp}); err != nil {
			return r, nil, err
		}
	}
	mask.Apply(lin.W)
	r.Kept = mask.Kept()
	r.Sparsity = 1 - float64(r.Kept)/float64(out*in)
	return r, mask, nil
}

func fillMask(m *prune.Mask) {
	for i := 0; i < m.Out; i++ {
		for j := 0; j < m.In; j++ {
			m.Set(i, j, true)
		}
	}
}

// scoreMask scores the matrix with the method's metric and selects.
func (e *engine) scoreMask(lin *nn.Linear[float32], st *prune.Stats) (*prune.Mask, error) {
	out, in := lin.Out, lin.In
	metric, ok := e.cfg.Method.metric()
	if !ok {
		return nil, fmt.Errorf("method %s does not rank by a metric", e.cfg.Method)
	}
	scores := make([]float32, out*in)
	if err := prune.Score(metric, scores, lin.W, out, in, st, nil); err != nil {
		return nil, err
	}
	switch {
	case e.cfg.M > 0:
		return prune.NM(scores, out, in, e.cfg.N, e.cfg.M)
	case e.cfg.Group == ByRow:
		return prune.UnstructuredByRow(scores, out, in, e.cfg.Sparsity)
	default:
		return prune.Unstructured(scores, out, in, e.cfg.Sparsity)
	}
}

func (e *engine) sparseGPT(lin *nn.Linear[float32], h *prune.Hessian) (*prune.Mask, error) {
	res, err := prune.SparseGPT(lin.W, lin.Out, lin.In, h, prune.SparseGPTConfig{
		Sparsity: e.cfg.Sparsity, N: e.cfg.N, M: e.cfg.M, BlockSize: e.cfg.BlockSize, PercDamp: e.cfg.PercDamp})
	if err != nil {
		return nil, err
	}
	return prune.MaskFromKeep(lin.Out, lin.In, res.Keep), nil
}

// roundToStorage rounds updated weights to the checkpoint's dtype, so the
// next layer sees exactly the weights that will be written.
func roundToStorage(w []float32, dtype string) {
	switch dtype {
	case "BF16":
		for i, v := range w {
			w[i] = safetensors.BF16ToF32(safetensors.F32ToBF16(v))
		}
	case "F16":
		for i, v := range w {
			w[i] = safetensors.F16ToF32(safetensors.F32ToF16(v))
		}
	}
}

// collector gathers input statistics of a layer's targets. Matrices that
// read the same input (q, k, v; gate, up) share one accumulator.
type collector struct {
	sums [4]*prune.Stats
	hess [4]*prune.Hessian
	t    int // tokens per window: SparseGPT's running average counts windows
}

func newCollector(c *model.Config, hessian bool, t int) *collector {
	col := &collector{t: t}
	widths := [4]int{c.Dim, c.QDim(), c.Dim, c.Hidden}
	for g, w := range widths {
		col.sums[g] = prune.NewStats(w)
		if hessian {
			col.hess[g] = prune.NewHessian(w)
		}
	}
	return col
}

// Observe implements nn.Observer; shared inputs are counted once.
func (c *collector) Observe(layer int, m model.Matrix, x []float32, rows, cols int) {
	if !model.GroupLeader(m) {
		return
	}
	g := model.InputGroup(m)
	x = x[:rows*cols] // the stage's buffer may be longer (a short last batch)
	c.sums[g].Add(x, rows, cols)
	if c.hess[g] != nil {
		c.hess[g].Add(x, rows, cols, rows/c.t)
	}
}

func (c *collector) stats(m model.Matrix) *prune.Stats     { return c.sums[model.InputGroup(m)] }
func (c *collector) hessian(m model.Matrix) *prune.Hessian { return c.hess[model.InputGroup(m)] }
