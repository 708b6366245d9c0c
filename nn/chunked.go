package nn

import "fmt"

// Chunked runs a Stage over one window of T tokens split into chunks of C
// consecutive tokens (the last may be shorter), so a pipeline of stages
// can work on different chunks at once (issue 16): causal attention lets
// chunk i at a layer use only the keys and values of chunks ≤ i, which
// the stage keeps per owned layer as the chunks pass.
//
// Forward takes the chunks in order 0, 1, …; Backward (after a Forward of
// every chunk with keep) takes them in reverse. Backward accumulates the
// gradients of earlier chunks' keys and values, and the weight gradients,
// chunk after chunk in that fixed order, so for a given C the result is
// the same bits however the layers are spread over stages. It is not the
// same bits as the unchunked Stage (sums are split differently); the tests
// bound the difference.
//
// Memory beyond the Stage's weights: per owned layer its input (Dim values
// per token, kept for backward), K and V of the window (2·KVDim per token)
// and, with gradients, their accumulated gradients (2·KVDim per token);
// one layer's workspace for C rows; and (attnBlock × T) attention scratch
// per worker.
type Chunked[T Float] struct {
	S    *Stage[T]
	T, C int

	work    *layerWork[T]
	scratch []chunkScratch[T]
	inputs  [][]T // per owned layer: its input for the window (T × Dim)
	kc, vc  [][]T // per owned layer: K (after RoPE) and V of the window
	dk, dv  [][]T // per owned layer: gradients of K and V accumulated so far
	fwd     [2][]T
	bwd     [2][]T
	tmpOut  []T
	tokens  []int32 // the window's token ids (stages that embed)
	next    int     // the chunk Forward expects
	back    int     // the chunk Backward expects (-1: none)
	kept    bool    // every forward chunk so far was kept for backward
}

// chunkScratch is per-worker attention memory.
type chunkScratch[T Float] struct {
	p, dp []T // attnBlock × T probabilities and their gradient
	inv   []float64
}

// NewChunked prepares s to run windows of t tokens in chunks of c tokens.
// c ≥ t gives a single chunk.
func NewChunked[T Float](s *Stage[T], t, c int) (*Chunked[T], error) {
	if t <= 0 || c <= 0 {
		return nil, fmt.Errorf("nn: chunked window of %d tokens in chunks of %d", t, c)
	}
	if t > s.rope.MaxPos() {
		return nil, fmt.Errorf("nn: window of %d tokens is longer than the model's %d positions", t, s.rope.MaxPos())
	}
	c = min(c, t)
	cfg := s.W.Cfg
	n := s.W.To - s.W.From
	cs := &Chunked[T]{S: s, T: t, C: c, back: -1,
		work:   newLayerWork[T](cfg, c, s.grad),
		inputs: make([][]T, n), kc: make([][]T, n), vc: make([][]T, n),
		tmpOut: make([]T, c*cfg.Dim), tokens: make([]int32, t),
	}
	for i := range cs.fwd {
		cs.fwd[i] = make([]T, c*cfg.Dim)
		cs.bwd[i] = make([]T, c*cfg.Dim)
	}
	kd := cfg.KVDim()
	for i := 0; i < n; i++ {
		cs.kc[i], cs.vc[i] = make([]T, t*kd), make([]T, t*kd)
	}
	if s.grad {
		cs.dk, cs.dv = make([][]T, n), make([][]T, n)
		for i := 0; i < n; i++ {
			cs.dk[i], cs.dv[i] = make([]T, t*kd), make([]T, t*kd)
		}
	}
	cs.scratch = newChunkScratch[T](t, s.grad)
	return cs, nil
}

// Chunks is the number of chunks of a window.
func (cs *Chunked[T]) Chunks() int { return (cs.T + cs.C - 1) / cs.C }

// Span returns the token positions [p0, p1) of chunk i.
func (cs *Chunked[T]) Span(i int) (p0, p1 int) {
	return i * cs.C, min(cs.T, (i+1)*cs.C)
}

// Forward runs chunk i (i = 0 starts a new window). A stage that owns the
// embedding reads tokens (the chunk's ids) and ignores x; otherwise x
// holds the chunk's hidden states from the previous stage ((p1−p0) × Dim).
// The result belongs to cs and stays valid until the next call. With keep,
// what Backward needs is retained (every chunk of a window must agree).
func (cs *Chunked[T]) Forward(i int, tokens []int32, x []T, keep bool) ([]T, error) {
	if i != cs.next && i != 0 {
		return nil, fmt.Errorf("nn: forward of chunk %d, expected chunk %d", i, cs.next)
	}
	if i >= cs.Chunks() {
		return nil, fmt.Errorf("nn: chunk %d of a window of %d chunks", i, cs.Chunks())
	}
	if i == 0 {
		cs.kept = keep
		cs.back = -1
	} else if cs.kept != keep {
		return nil, fmt.Errorf("nn: chunk %d kept=%v, earlier chunks kept=%v", i, keep, cs.kept)
	}
	c := cs.S.W.Cfg
	p0, p1 := cs.Span(i)
	n, d := p1-p0, c.Dim
	cur, next := cs.fwd[0][:n*d], cs.fwd[1][:n*d]
	if cs.S.W.Embed != nil && cs.S.W.Part.Embed {
		if err := cs.embed(cur, tokens, p0); err != nil {
			return nil, err
		}
	} else {
		if len(x) != n*d {
			return nil, fmt.Errorf("nn: chunk input has %d values, want %d×%d", len(x), n, d)
		}
		copy(cur, x)
	}
	for l := cs.S.W.From; l < cs.S.W.To; l++ {
		li := l - cs.S.W.From
		if keep {
			if cs.inputs[li] == nil {
				cs.inputs[li] = make([]T, cs.T*d)
			}
			copy(cs.inputs[li][p0*d:p1*d], cur)
		}
		cs.layerForward(l, next, cur, p0, p1, cs.S.Observer)
		cur, next = next, cur
	}
	cs.next = i + 1
	if cs.next == cs.Chunks() && keep {
		cs.back = cs.Chunks() - 1
	}
	return cur, nil
}

func (cs *Chunked[T]) embed(dst []T, tokens []int32, p0 int) error {
	c := cs.S.W.Cfg
	n := len(dst) / c.Dim
	if len(tokens) != n {
		return fmt.Errorf("nn: got %d token ids for a chunk of %d", len(tokens), n)
	}
	if err := embedRows(dst, cs.S.W.Embed, tokens, c, p0); err != nil {
		return err
	}
	copy(cs.tokens[p0:], tokens)
	return nil
}

// Backward propagates dOut, the gradient of chunk i's output, through the
// owned layers, accumulating parameter gradients into S.G, and returns the
// gradient of the chunk's input (valid until the next call). Chunks come
// last to first after a kept forward of the whole window; the gradients
// of S.G are accumulated, not cleared (ZeroGrad is the caller's).
func (cs *Chunked[T]) Backward(i int, dOut []T) ([]T, error) {
	s := cs.S
	if !s.grad {
		return nil, fmt.Errorf("nn: Backward without EnableGrad")
	}
	if cs.back < 0 || i != cs.back {
		return nil, fmt.Errorf("nn: backward of chunk %d, expected chunk %d (after a kept forward of all %d chunks, last first)", i, cs.back, cs.Chunks())
	}
	c := s.W.Cfg
	p0, p1 := cs.Span(i)
	n, d := p1-p0, c.Dim
	if len(dOut) != n*d {
		return nil, fmt.Errorf("nn: chunk output gradient has %d values, want %d×%d", len(dOut), n, d)
	}
	if i == cs.Chunks()-1 {
		for li := range cs.dk {
			clear(cs.dk[li])
			clear(cs.dv[li])
		}
	}
	cur, other := cs.bwd[0][:n*d], cs.bwd[1][:n*d]
	copy(cur, dOut)
	for l := s.W.To - 1; l >= s.W.From; l-- {
		li := l - s.W.From
		cs.layerBackward(l, other, cur, cs.inputs[li][p0*d:p1*d], p0, p1)
		cur, other = other, cur
	}
	if s.W.Part.Embed && s.G.Embed != nil {
		addEmbedGrad(s.G.Embed, cs.tokens[p0:p1], cur, d)
	}
	cs.back = i - 1
	return cur, nil
}

// HeadLoss is Stage.HeadLoss for one chunk's rows: count is the number of
// predictions of the whole window, so the gradient is that of the
// window's mean loss and the chunks' sums add up to the window's.
func (cs *Chunked[T]) HeadLoss(h []T, targets []int32, count int, grad bool) (float64, []T, error) {
	if count <= 0 {
		return 0, nil, fmt.Errorf("nn: window prediction count %d", count)
	}
	return cs.S.headLoss(h, targets, count, grad)
}
