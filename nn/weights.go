package nn

import (
	"fmt"

	"github.com/unipruning/unipruning/model"
)

// Linear is y = x·Wᵀ + b with W stored row-major as Out×In.
type Linear[T Float] struct {
	W       []T
	B       []T // nil when the layer has no bias
	Out, In int
}

// Block holds the weights of one decoder layer.
type Block[T Float] struct {
	AttnNorm, MLPNorm []T
	// QNorm and KNorm (HeadDim each) are the per-head query/key RMSNorms
	// applied before RoPE when Cfg.QKNorm (Qwen3); nil otherwise.
	QNorm, KNorm []T
	Lin          [model.NumMatrices]Linear[T]
}

// Weights holds the parameters a process owns: possibly only decoder
// layers [From, To), plus the embedding and/or the head when it owns them.
type Weights[T Float] struct {
	Cfg *model.Config
	Part
	Embed  []T         // Vocab×Dim; nil when not owned (unless the head is tied)
	Blocks []*Block[T] // indexed by absolute layer; nil outside [From, To)
	Norm   []T         // final RMSNorm; nil unless the head is owned
	Head   []T         // Vocab×Dim; aliases Embed when tied; nil unless owned
}

// Part selects what to load.
type Part struct {
	From, To    int  // decoder layers [From, To)
	Embed, Head bool // the token embedding; the final norm and LM head
}

// Whole is the Part covering the entire model.
func Whole(c *model.Config) Part { return Part{0, c.Layers, true, true} }

// Load reads the selected part of a checkpoint into memory.
func Load[T Float](ck *model.Checkpoint, p Part) (*Weights[T], error) {
	c := ck.Config
	if p.From < 0 || p.To > c.Layers || p.From > p.To {
		return nil, fmt.Errorf("nn: layer range [%d,%d) outside the model's %d layers", p.From, p.To, c.Layers)
	}
	w := &Weights[T]{Cfg: c, Part: p, Blocks: make([]*Block[T], c.Layers)}
	var err error
	read := func(name string) []T {
		if err != nil {
			return nil
		}
		var v []T
		v, err = readTensor[T](ck, name)
		return v
	}
	if p.Embed || (p.Head && c.TiedHead) {
		w.Embed = read(model.EmbedName)
	}
	if p.Head {
		w.Norm = read(model.NormName)
		w.Head = w.Embed
		if !c.TiedHead {
			w.Head = read(model.HeadName)
		}
	}
	for l := p.From; l < p.To && err == nil; l++ {
		w.Blocks[l] = loadBlock[T](ck, l, read)
	}
	if err != nil {
		return nil, err
	}
	if !p.Embed && !(p.Head && c.TiedHead) {
		w.Embed = nil
	}
	return w, nil
}

func loadBlock[T Float](ck *model.Checkpoint, l int, read func(string) []T) *Block[T] {
	c := ck.Config
	b := &Block[T]{}
	for m := model.Matrix(0); m < model.NumMatrices; m++ {
		b.Lin[m].Out, b.Lin[m].In = m.Shape(c)
	}
	for _, t := range blockTensors(c, l, b) {
		*t.dst = read(t.name)
	}
	return b
}

// blockTensor is one tensor of a decoder layer: its checkpoint name and
// the field of a Block that holds it.
type blockTensor[T Float] struct {
	name string
	dst  *[]T
}

// blockTensors lists decoder layer l's tensors in reading order with the
// fields of b they go to: the norms, then each matrix and its bias.
func blockTensors[T Float](c *model.Config, l int, b *Block[T]) []blockTensor[T] {
	ts := []blockTensor[T]{{model.AttnNormName(l), &b.AttnNorm}, {model.MLPNormName(l), &b.MLPNorm}}
	if c.QKNorm {
		ts = append(ts, blockTensor[T]{model.QNormName(l), &b.QNorm}, blockTensor[T]{model.KNormName(l), &b.KNorm})
	}
	for m := model.Matrix(0); m < model.NumMatrices; m++ {
		t := model.Target{Layer: l, Matrix: m}
		ts = append(ts, blockTensor[T]{t.TensorName(), &b.Lin[m].W})
		if c.HasBias(m) {
			ts = append(ts, blockTensor[T]{t.BiasName(), &b.Lin[m].B})
		}
	}
	return ts
}

func readTensor[T Float](ck *model.Checkpoint, name string) ([]T, error) {
	f, err := ck.Read(name)
	if err != nil {
		return nil, err
	}
	if v, ok := any(f).([]T); ok {
		return v, nil
	}
	out := make([]T, len(f))
	for i, x := range f {
		out[i] = T(x)
	}
	return out, nil
}

// Owns reports whether the weights include decoder layer l.
func (w *Weights[T]) Owns(l int) bool { return l >= w.From && l < w.To }

// Clone deep-copies the weights (aliasing of a tied head is preserved).
func (w *Weights[T]) Clone() *Weights[T] {
	c := *w
	c.Embed = cloneSlice(w.Embed)
	c.Norm = cloneSlice(w.Norm)
	c.Head = c.Embed
	if !w.Cfg.TiedHead || w.Embed == nil {
		c.Head = cloneSlice(w.Head)
	}
	c.Blocks = make([]*Block[T], len(w.Blocks))
	for l, b := range w.Blocks {
		if b == nil {
			continue
		}
		nb := &Block[T]{AttnNorm: cloneSlice(b.AttnNorm), MLPNorm: cloneSlice(b.MLPNorm),
			QNorm: cloneSlice(b.QNorm), KNorm: cloneSlice(b.KNorm)}
		for m := range b.Lin {
			nb.Lin[m] = b.Lin[m]
			nb.Lin[m].W = cloneSlice(b.Lin[m].W)
			nb.Lin[m].B = cloneSlice(b.Lin[m].B)
		}
		c.Blocks[l] = nb
	}
	return &c
}

func cloneSlice[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append([]T(nil), s...)
}
