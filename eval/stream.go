package eval

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"runtime"

	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/nn"
)

// StreamOptions configures a layer-streamed perplexity run.
type StreamOptions struct {
	// Batch is the number of windows per forward pass. With the same
	// batch as Perplexity, every matrix product has the same shape and
	// operands, so the result is bitwise the same.
	Batch int
	// SpillDir, when set, holds the activations of all windows in a
	// temporary file there (removed at the end) instead of in memory.
	SpillDir string
	// Progress, if set, is called after each pass: the embedding, every
	// decoder layer, then the head (passes in all: Layers+2).
	Progress func(done, total int)
}

// PerplexityStreamed scores windows as Perplexity does, without holding the
// model: the embedding, then one decoder layer at a time (read from the
// checkpoint into one reused slot), then the head, each applied to the
// activations of all windows, which stay in memory or in a spill file.
// Resident: the largest of the embedding, the head and one layer, plus the
// activations (unless spilled) and one batch's workspace.
func PerplexityStreamed(ck *model.Checkpoint, windows [][]int32, opt StreamOptions) (NLL, error) {
	var res NLL
	if len(windows) == 0 {
		return res, fmt.Errorf("no windows to score")
	}
	c, t := ck.Config, len(windows[0])
	for _, w := range windows {
		if len(w) != t {
			return res, fmt.Errorf("windows have different lengths (%d and %d)", t, len(w))
		}
	}
	acts, err := newActStore(len(windows)*t*c.Dim, t*c.Dim, opt.SpillDir)
	if err != nil {
		return res, err
	}
	defer acts.close()
	s := streamer{ck: ck, windows: windows, t: t, batch: max(1, opt.Batch), acts: acts}
	passes, done := c.Layers+2, 0
	step := func() {
		done++
		if opt.Progress != nil {
			opt.Progress(done, passes)
		}
	}
	if err := s.embed(); err != nil {
		return res, err
	}
	step()
	// Collect between phases: the embedding (or the layer slot) is garbage
	// now, and without a collection the next phase's allocation would add
	// to it instead of reusing its memory (the heap may grow to twice the
	// live data before the collector runs on its own).
	runtime.GC()
	if err := s.layers(step); err != nil {
		return res, err
	}
	runtime.GC()
	if res, err = s.head(); err != nil {
		return res, err
	}
	step()
	return res, nil
}

// streamer applies one part of the model at a time to every batch.
type streamer struct {
	ck      *model.Checkpoint
	windows [][]int32
	t       int
	batch   int
	acts    actStore
	toks    []int32 // tokens' buffer
}

// tokens concatenates the ids of windows [i, i+b) into one reused buffer
// (valid until the next call).
func (s *streamer) tokens(i, b int) []int32 {
	s.toks = s.toks[:0]
	for _, w := range s.windows[i : i+b] {
		s.toks = append(s.toks, w...)
	}
	return s.toks
}

// each calls f for consecutive batches: i is the first window, b how many.
func (s *streamer) each(f func(i, b int) error) error {
	for i := 0; i < len(s.windows); i += s.batch {
		if err := f(i, min(s.batch, len(s.windows)-i)); err != nil {
			return err
		}
	}
	return nil
}

func (s *streamer) embed() error {
	w, err := nn.Load[float32](s.ck, nn.Part{Embed: true})
	if err != nil {
		return err
	}
	st := nn.NewStage(w)
	return s.each(func(i, b int) error {
		h, err := st.Forward(s.tokens(i, b), nil, b, s.t, false)
		if err != nil {
			return err
		}
		return s.acts.put(i, h)
	})
}

// layers runs every decoder layer over all activations, in place. One
// block of buffers is allocated for the first layer and refilled from the
// checkpoint for each next one, so the heap does not grow by a layer per
// layer while the garbage collector lags.
func (s *streamer) layers(step func()) error {
	c := s.ck.Config
	if c.Layers == 0 {
		return nil
	}
	w, err := nn.Load[float32](s.ck, nn.Part{From: 0, To: 1})
	if err != nil {
		return err
	}
	st := nn.NewStage(w)
	for l := 0; l < c.Layers; l++ {
		if l > 0 {
			if err := nn.MoveLayer(s.ck, w, l); err != nil {
				return err
			}
		}
		err := s.each(func(i, b int) error {
			x, err := s.acts.get(i, b)
			if err != nil {
				return err
			}
			h, err := st.Forward(nil, x, b, s.t, false)
			if err != nil {
				return err
			}
			return s.acts.put(i, h)
		})
		if err != nil {
			return fmt.Errorf("layer %d: %w", l, err)
		}
		step()
	}
	return nil
}

func (s *streamer) head() (NLL, error) {
	var res NLL
	w, err := nn.Load[float32](s.ck, nn.Part{Head: true})
	if err != nil {
		return res, err
	}
	st := nn.NewStage(w)
	err = s.each(func(i, b int) error {
		h, err := s.acts.get(i, b)
		if err != nil {
			return err
		}
		sum, n, _, err := st.HeadLoss(h, nn.Targets(s.tokens(i, b), b, s.t), false)
		res.Sum += sum
		res.Count += n
		return err
	})
	return res, err
}

// actStore holds the hidden states of all windows between passes; a
// batch's output replaces its input in place (same offset, same size).
type actStore interface {
	get(window, b int) ([]float32, error) // valid until the next get
	put(window int, h []float32) error
	close() error
}

func newActStore(total, perWindow int, spillDir string) (actStore, error) {
	if spillDir == "" {
		return &memActs{v: make([]float32, total), per: perWindow}, nil
	}
	f, err := os.CreateTemp(spillDir, "eval-activations-*.spill")
	if err != nil {
		return nil, fmt.Errorf("eval: spill file: %w", err)
	}
	return &fileActs{f: f, per: perWindow}, nil
}

type memActs struct {
	v   []float32
	per int
}

func (m *memActs) get(i, b int) ([]float32, error) { return m.v[i*m.per : (i+b)*m.per], nil }
func (m *memActs) put(i int, h []float32) error    { copy(m.v[i*m.per:], h); return nil }
func (m *memActs) close() error                    { m.v = nil; return nil }

// fileActs keeps activations as little-endian float32 in a temporary file.
type fileActs struct {
	f   *os.File
	per int
	buf []byte
	x   []float32
}

func (a *fileActs) get(i, b int) ([]float32, error) {
	n := b * a.per
	a.grow(n)
	if _, err := a.f.ReadAt(a.buf[:4*n], int64(i)*int64(a.per)*4); err != nil {
		return nil, fmt.Errorf("eval: reading spilled activations: %w", err)
	}
	for j := range a.x[:n] {
		a.x[j] = math.Float32frombits(binary.LittleEndian.Uint32(a.buf[4*j:]))
	}
	return a.x[:n], nil
}

func (a *fileActs) put(i int, h []float32) error {
	a.grow(len(h))
	for j, v := range h {
		binary.LittleEndian.PutUint32(a.buf[4*j:], math.Float32bits(v))
	}
	if _, err := a.f.WriteAt(a.buf[:4*len(h)], int64(i)*int64(a.per)*4); err != nil {
		return fmt.Errorf("eval: spilling activations: %w", err)
	}
	return nil
}

func (a *fileActs) grow(n int) {
	if len(a.x) < n {
		a.x, a.buf = make([]float32, n), make([]byte, 4*n)
	}
}

func (a *fileActs) close() error {
	a.f.Close()
	return os.Remove(a.f.Name())
}
