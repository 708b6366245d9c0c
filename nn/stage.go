package nn

import (
	"fmt"

	"github.com/unipruning/unipruning/model"
)

// Stage runs the decoder layers a process owns — [W.From, W.To), plus the
// embedding and/or the head when W has them — forward, and backward given
// the gradient of its output. A whole model is one stage; a pipeline of
// stages computes bitwise the same values, because every layer's
// arithmetic is independent of where the layer boundaries are.
//
// Memory: for a backward pass the stage keeps each owned layer's input
// (Dim values per token per layer) and recomputes the layer's
// intermediates during backward, so activation memory is
// Dim·4 B·tokens·layers plus one layer's workspace
// (≈ (5·Dim + 4·QDim/KVDim + 5·Hidden)·4 B per token) and T×T attention
// scratch per worker.
type Stage[T Float] struct {
	W *Weights[T]
	// G accumulates gradients (same layout as W; nil entries are not
	// computed). Nil until EnableGrad.
	G        *Weights[T]
	Observer Observer[T]

	rope    *Rope
	B, T    int
	cap     int // rows the buffers hold
	tokens  []int32
	inputs  [][]T  // per owned layer, its input (kept for backward)
	fwd     [2][]T // forward ping-pong buffers
	bwd     [2][]T // backward ping-pong buffers
	tmpOut  []T    // output of a recomputed layer (discarded)
	work    *layerWork[T]
	grad    bool
	scratch []attnScratch[T]
	head    headWork[T]
}

// NewStage prepares a stage over w.
func NewStage[T Float](w *Weights[T]) *Stage[T] {
	c := w.Cfg
	return &Stage[T]{W: w, rope: NewRope(c.InvFreq(), c.MaxSeq, c.RopeInterleaved)}
}

// EnableGrad allocates gradient accumulators: for the target matrices
// always, for every other parameter too when all is set.
func (s *Stage[T]) EnableGrad(all bool) {
	w := s.W
	g := &Weights[T]{Cfg: w.Cfg, Part: w.Part, Blocks: make([]*Block[T], len(w.Blocks))}
	for l, b := range w.Blocks {
		if b == nil {
			continue
		}
		gb := &Block[T]{}
		for m, lin := range b.Lin {
			gb.Lin[m] = Linear[T]{W: make([]T, len(lin.W)), Out: lin.Out, In: lin.In}
			if all && lin.B != nil {
				gb.Lin[m].B = make([]T, len(lin.B))
			}
		}
		if all {
			gb.AttnNorm, gb.MLPNorm = make([]T, len(b.AttnNorm)), make([]T, len(b.MLPNorm))
			gb.QNorm, gb.KNorm = zerosLike(b.QNorm), zerosLike(b.KNorm)
		}
		g.Blocks[l] = gb
	}
	if all {
		g.Embed, g.Norm = zerosLike(w.Embed), zerosLike(w.Norm)
		g.Head = g.Embed
		if !w.Cfg.TiedHead {
			g.Head = zerosLike(w.Head)
		}
	}
	s.G, s.grad = g, true
	s.cap = 0 // reallocate the workspace with gradient buffers
}

// ZeroGrad clears the accumulated gradients.
func (s *Stage[T]) ZeroGrad() {
	if s.G == nil {
		return
	}
	for _, b := range s.G.Blocks {
		if b == nil {
			continue
		}
		for m := range b.Lin {
			clear(b.Lin[m].W)
			clear(b.Lin[m].B)
		}
		clear(b.AttnNorm)
		clear(b.MLPNorm)
		clear(b.QNorm)
		clear(b.KNorm)
	}
	clear(s.G.Embed)
	clear(s.G.Norm)
	clear(s.G.Head)
}

func zerosLike[T Float](v []T) []T {
	if v == nil {
		return nil
	}
	return make([]T, len(v))
}

// ensure sizes the buffers for b windows of t tokens.
func (s *Stage[T]) ensure(b, t int) error {
	c := s.W.Cfg
	if t > s.rope.MaxPos() {
		return fmt.Errorf("nn: window of %d tokens is longer than the model's %d positions", t, s.rope.MaxPos())
	}
	if b <= 0 || t <= 0 {
		return fmt.Errorf("nn: empty batch (%d windows of %d tokens)", b, t)
	}
	s.B, s.T = b, t
	n := b * t
	if n <= s.cap && s.scratch != nil && len(s.scratch[0].kt) >= c.HeadDim*t {
		return nil
	}
	s.cap = n
	s.work = newLayerWork[T](c, n, s.grad)
	s.scratch = newScratch[T](t, c.HeadDim, s.grad)
	d := n * c.Dim
	s.fwd = [2][]T{make([]T, d), make([]T, d)}
	s.bwd = [2][]T{make([]T, d), make([]T, d)}
	s.tmpOut = make([]T, d)
	s.inputs = nil
	return nil
}

// Forward runs the stage on b windows of t tokens. A stage that owns the
// embedding reads tokens (b·t ids) and ignores x; otherwise x holds the
// hidden states from the previous stage (b·t × Dim). The returned hidden
// states belong to the stage and stay valid until the next call. With keep
// set, what Backward needs is retained.
func (s *Stage[T]) Forward(tokens []int32, x []T, b, t int, keep bool) ([]T, error) {
	if err := s.ensure(b, t); err != nil {
		return nil, err
	}
	c, n := s.W.Cfg, b*t
	cur, next := s.fwd[0][:n*c.Dim], s.fwd[1][:n*c.Dim]
	if s.W.Embed != nil && s.W.Part.Embed {
		if err := s.embed(cur, tokens); err != nil {
			return nil, err
		}
	} else {
		if len(x) != n*c.Dim {
			return nil, fmt.Errorf("nn: stage input has %d values, want %d×%d", len(x), n, c.Dim)
		}
		copy(cur, x)
	}
	if keep && len(s.inputs) != s.W.To-s.W.From {
		s.inputs = make([][]T, s.W.To-s.W.From)
	}
	for l := s.W.From; l < s.W.To; l++ {
		if keep {
			if cap(s.inputs[l-s.W.From]) < n*c.Dim {
				s.inputs[l-s.W.From] = make([]T, n*c.Dim)
			}
			in := s.inputs[l-s.W.From][:n*c.Dim]
			copy(in, cur)
		}
		s.layerForward(l, next, cur, s.Observer)
		cur, next = next, cur
	}
	return cur, nil
}

func (s *Stage[T]) embed(dst []T, tokens []int32) error {
	c := s.W.Cfg
	if len(tokens) != s.B*s.T {
		return fmt.Errorf("nn: got %d token ids, want %d×%d", len(tokens), s.B, s.T)
	}
	if err := embedRows(dst, s.W.Embed, tokens, c, 0); err != nil {
		return err
	}
	s.tokens = append(s.tokens[:0], tokens...)
	return nil
}

// embedRows copies the embedding rows of tokens (at window positions p0,
// p0+1, …, for the error message) into dst.
func embedRows[T Float](dst, embed []T, tokens []int32, c *model.Config, p0 int) error {
	for i, id := range tokens {
		if id < 0 || int(id) >= c.Vocab {
			return fmt.Errorf("nn: token id %d at position %d is outside the vocabulary of %d", id, p0+i, c.Vocab)
		}
		copy(dst[i*c.Dim:(i+1)*c.Dim], embed[int(id)*c.Dim:(int(id)+1)*c.Dim])
	}
	return nil
}

// addEmbedGrad adds the gradient rows grad (one per token, width d) to the
// embedding gradient gEmbed at the tokens' rows, in token order.
func addEmbedGrad[T Float](gEmbed []T, tokens []int32, grad []T, d int) {
	for i, id := range tokens {
		row := gEmbed[int(id)*d : (int(id)+1)*d]
		for j, v := range grad[i*d : (i+1)*d] {
			row[j] += v
		}
	}
}

// Backward propagates dOut (the gradient of the stage's output, b·t × Dim)
// through the owned layers, accumulating parameter gradients into G, and
// returns the gradient of the stage's input (valid until the next call).
// When the stage owns the embedding and all-parameter gradients are on,
// the embedding gradient is accumulated too.
func (s *Stage[T]) Backward(dOut []T) ([]T, error) {
	if !s.grad {
		return nil, fmt.Errorf("nn: Backward without EnableGrad")
	}
	if len(s.inputs) != s.W.To-s.W.From {
		return nil, fmt.Errorf("nn: Backward without a Forward(keep=true)")
	}
	c, n := s.W.Cfg, s.B*s.T
	if len(dOut) != n*c.Dim {
		return nil, fmt.Errorf("nn: output gradient has %d values, want %d×%d", len(dOut), n, c.Dim)
	}
	cur, other := s.bwd[0][:n*c.Dim], s.bwd[1][:n*c.Dim]
	copy(cur, dOut)
	for l := s.W.To - 1; l >= s.W.From; l-- {
		s.layerBackward(l, other, cur, s.inputs[l-s.W.From][:n*c.Dim])
		cur, other = other, cur
	}
	if s.W.Part.Embed && s.G.Embed != nil {
		addEmbedGrad(s.G.Embed, s.tokens, cur, c.Dim)
	}
	return cur, nil
}
