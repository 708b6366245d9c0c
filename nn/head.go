package nn

import (
	"fmt"
	"math"
	"runtime"
)

// headChunkValues bounds one chunk of logits (rows × vocab), so a
// 128k-token vocabulary never needs a full tokens × vocab matrix.
const headChunkValues = 1 << 22

// headWorkersMax caps the chunks scored at once: every worker keeps its own
// chunk of logits, so without a cap the head's memory would grow with the
// core count (64 MiB of float32 logits per 4 workers).
const headWorkersMax = 8

type headWork[T Float] struct {
	hn, dhn, dh []T
	inv         []float64
	logits      [][]T // one rows × vocab buffer per worker
	prevN, rows int
}

func (s *Stage[T]) headBuffers(n int) *headWork[T] {
	c, hw := s.W.Cfg, &s.head
	if hw.prevN < n {
		hw.hn, hw.dhn, hw.dh = make([]T, n*c.Dim), make([]T, n*c.Dim), make([]T, n*c.Dim)
		hw.inv = make([]float64, n)
		hw.prevN = n
	}
	if hw.rows == 0 {
		hw.rows = max(1, headChunkValues/c.Vocab)
		hw.logits = make([][]T, runtime.GOMAXPROCS(0))
	}
	return hw
}

// Targets returns next-token targets for b windows of t tokens: position i
// predicts token i+1 of the same window; the last position of each window
// has none (-1).
func Targets(tokens []int32, b, t int) []int32 {
	tg := make([]int32, b*t)
	for w := 0; w < b; w++ {
		for i := 0; i < t; i++ {
			if i+1 < t {
				tg[w*t+i] = tokens[w*t+i+1]
			} else {
				tg[w*t+i] = -1
			}
		}
	}
	return tg
}

// HeadLoss applies the final norm and the LM head to hidden states h (n
// rows) and returns the summed next-token negative log-likelihood over the
// rows whose target is not -1, and their count. With grad, it also returns
// the gradient of the MEAN loss with respect to h (valid until the next
// call) and accumulates head/norm gradients when those are enabled.
func (s *Stage[T]) HeadLoss(h []T, targets []int32, grad bool) (sum float64, count int, dh []T, err error) {
	for _, t := range targets {
		if t >= 0 {
			count++
		}
	}
	if sum, dh, err = s.headLoss(h, targets, count, grad); err != nil {
		return 0, 0, nil, err
	}
	return sum, count, dh, nil
}

// headLoss is HeadLoss with the loss divided by count predictions (the
// window's, when h is a chunk of it).
func (s *Stage[T]) headLoss(h []T, targets []int32, count int, grad bool) (sum float64, dh []T, err error) {
	c := s.W.Cfg
	if s.W.Head == nil || s.W.Norm == nil {
		return 0, nil, fmt.Errorf("nn: this stage does not own the LM head")
	}
	n := len(targets)
	if len(h) != n*c.Dim {
		return 0, nil, fmt.Errorf("nn: head input has %d values, want %d×%d", len(h), n, c.Dim)
	}
	for _, t := range targets {
		if int(t) >= c.Vocab || t < -1 {
			return 0, nil, fmt.Errorf("nn: target id %d outside the vocabulary of %d", t, c.Vocab)
		}
	}
	if grad && !s.grad {
		return 0, nil, fmt.Errorf("nn: HeadLoss with grad but EnableGrad was not called")
	}
	hw := s.headBuffers(n)
	rmsNorm(hw.hn, h, s.W.Norm, hw.inv, n, c.Dim, c.NormEps)
	if grad {
		clear(hw.dhn[:n*c.Dim])
	}
	sum = s.headChunks(hw, n, targets, grad, count)
	if !grad {
		return sum, nil, nil
	}
	dh = hw.dh[:n*c.Dim]
	clear(dh)
	var gNorm []T
	if s.G != nil {
		gNorm = s.G.Norm
	}
	rmsNormBackward(dh, hw.dhn, h, s.W.Norm, gNorm, hw.inv, n, c.Dim)
	return sum, dh, nil
}

// headChunks scores the rows in chunks, on parallel workers unless the
// head's own gradient is accumulated (chunks would race on it). Chunk
// sums are added in chunk order, so the result does not depend on the
// number of workers.
func (s *Stage[T]) headChunks(hw *headWork[T], n int, targets []int32, grad bool, count int) float64 {
	rows := min(n, hw.rows) // a short batch needs a short buffer
	chunks := (n + rows - 1) / rows
	sums := make([]float64, chunks)
	workers := min(chunks, len(hw.logits), headWorkersMax)
	if grad && s.G != nil && s.G.Head != nil {
		workers = 1
	}
	for w := 0; w < workers; w++ {
		if len(hw.logits[w]) < rows*s.W.Cfg.Vocab {
			hw.logits[w] = make([]T, rows*s.W.Cfg.Vocab)
		}
	}
	parallelFor(chunks, workers, func(w, ch int) {
		r0 := ch * rows
		sums[ch] = s.headChunk(hw, hw.logits[w], r0, min(n, r0+rows), targets, grad, count)
	})
	var sum float64
	for _, v := range sums {
		sum += v
	}
	return sum
}

// headChunk scores rows [r0, r1): logits, log-sum-exp in float64, NLL, and
// with grad the logits' gradient (softmax − onehot)/count pushed back.
func (s *Stage[T]) headChunk(hw *headWork[T], buf []T, r0, r1 int, targets []int32, grad bool, count int) float64 {
	c, rows := s.W.Cfg, r1-r0
	v := c.Vocab
	lg := buf[:rows*v]
	Gemm(false, true, rows, v, c.Dim, 1, hw.hn[r0*c.Dim:], c.Dim, s.W.Head, c.Dim, 0, lg, v)
	var sum float64
	for r := 0; r < rows; r++ {
		t := targets[r0+r]
		row := lg[r*v : (r+1)*v]
		if t < 0 {
			if grad {
				clear(row)
			}
			continue
		}
		lse := logSumExp(row)
		sum += lse - float64(row[t])
		if grad {
			scale := 1 / float64(count)
			for j, x := range row {
				row[j] = T(math.Exp(float64(x)-lse) * scale)
			}
			row[t] -= T(scale)
		}
	}
	if grad {
		Gemm(false, false, rows, c.Dim, v, 1, lg, v, s.W.Head, c.Dim, 1, hw.dhn[r0*c.Dim:], c.Dim)
		if s.G != nil && s.G.Head != nil {
			Gemm(true, false, v, c.Dim, rows, 1, lg, v, hw.hn[r0*c.Dim:], c.Dim, 1, s.G.Head, c.Dim)
		}
	}
	return sum
}

func logSumExp[T Float](row []T) float64 {
	mx := row[0]
	for _, x := range row {
		if x > mx {
			mx = x
		}
	}
	var s float64
	if isF32[T]() { // the fast exponential, as in attention
		for _, x := range row {
			s += expNeg(float64(x - mx))
		}
	} else {
		for _, x := range row {
			s += math.Exp(float64(x - mx))
		}
	}
	return float64(mx) + math.Log(s)
}

// Logits returns the logits of row r of hidden states h (for generation).
func (s *Stage[T]) Logits(h []T, r int) []T {
	c := s.W.Cfg
	out := make([]T, c.Vocab)
	s.LogitsInto(out, h[r*c.Dim:(r+1)*c.Dim], 1)
	return out
}

// LogitsInto writes the logits of the n rows of hidden states h into dst
// (n × vocab): the final norm, then the head.
func (s *Stage[T]) LogitsInto(dst, h []T, n int) {
	c := s.W.Cfg
	hw := s.headBuffers(n)
	rmsNorm(hw.hn, h[:n*c.Dim], s.W.Norm, hw.inv, n, c.Dim, c.NormEps)
	Gemm(false, true, n, c.Vocab, c.Dim, 1, hw.hn, c.Dim, s.W.Head, c.Dim, 0, dst, c.Vocab)
}
