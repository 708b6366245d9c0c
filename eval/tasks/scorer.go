package tasks

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/unipruning/unipruning/model/tokenizer"
	"github.com/unipruning/unipruning/nn"
)

// Request is one loglikelihood request: the log-probability of
// Continuation following Context.
type Request struct {
	Context, Continuation string
}

// Result is the harness's (loglikelihood, is_greedy) for one request, with
// what the model actually saw.
type Result struct {
	LogLik     float64 `json:"loglik"`
	Greedy     bool    `json:"is_greedy"`
	ContTokens int     `json:"cont_tokens"`
	// Truncated counts the tokens dropped from the left because context
	// plus continuation exceeded max_length+1 (the harness does the same,
	// with a warning); 0 almost always.
	Truncated int `json:"truncated,omitempty"`
}

// Options configure a Scorer.
type Options struct {
	// MaxLength is the harness's max_length: 0 means the model's context
	// (max_position_embeddings / llama2.c seq_len, as resolve_max_length).
	MaxLength int
	// NoBOS encodes without the BOS token. The harness's HF backend adds it
	// for LLaMA tokenizers (add_bos_token default), which is the default
	// here; Wanda's fork of the harness passes add_special_tokens=False.
	NoBOS bool
	// Batch is the number of requests per forward pass; 0 picks about 4096
	// tokens' worth per batch.
	Batch int
}

// Scorer runs loglikelihood requests on a whole model.
type Scorer struct {
	w      *nn.Weights[float32]
	st     *nn.Stage[float32]
	tok    tokenizer.Tokenizer
	maxLen int
	bos    bool
	batch  int
	logits []float32 // their logits
}

// NewScorer prepares a scorer over w, which must hold the whole model.
func NewScorer(w *nn.Weights[float32], tok tokenizer.Tokenizer, o Options) (*Scorer, error) {
	c := w.Cfg
	if w.From != 0 || w.To != c.Layers || w.Embed == nil || w.Head == nil || w.Norm == nil {
		return nil, fmt.Errorf("tasks: the scorer needs the whole model (embedding, all %d layers, final norm, head)", c.Layers)
	}
	if tok.VocabSize() > c.Vocab {
		return nil, fmt.Errorf("tasks: tokenizer has %d tokens, more than the model's vocabulary of %d", tok.VocabSize(), c.Vocab)
	}
	if o.MaxLength < 0 || o.MaxLength > c.MaxSeq {
		return nil, fmt.Errorf("tasks: max length %d outside 1..%d (the model's context)", o.MaxLength, c.MaxSeq)
	}
	if !o.NoBOS && tok.BOS() < 0 {
		return nil, fmt.Errorf("tasks: the tokenizer has no BOS token; use NoBOS")
	}
	s := &Scorer{w: w, st: nn.NewStage(w), tok: tok, maxLen: o.MaxLength, bos: !o.NoBOS, batch: o.Batch}
	if s.maxLen == 0 {
		s.maxLen = c.MaxSeq
	}
	return s, nil
}

// MaxLength is the context limit requests are truncated to.
func (s *Scorer) MaxLength() int { return s.maxLen }

// BOS reports whether encodings start with the BOS token.
func (s *Scorer) BOS() bool { return s.bos }

// Encode splits a request into context and continuation tokens the way
// TemplateLM.loglikelihood / _encode_pair (lm_eval/api/model.py) do for a
// causal model: trailing whitespace of the context moves to the front of
// the continuation; the whole string and the context are encoded
// separately and the continuation is the whole encoding past the
// context's length (the tokens at the seam are those of the whole
// string). An empty context becomes the prefix token (BOS, else EOS).
func (s *Scorer) Encode(r Request) (ctx, cont []int, err error) {
	if r.Context == "" {
		cont = s.tok.Encode(r.Continuation, false, false)
		prefix := s.tok.BOS()
		if prefix < 0 {
			prefix = s.tok.EOS()
		}
		if len(cont) > 0 && cont[0] == prefix {
			return cont[:1], cont[1:], nil
		}
		return []int{prefix}, cont, nil
	}
	c, k := r.Context, r.Continuation
	if t := pyRstrip(c); len(t) < len(c) {
		c, k = t, c[len(t):]+k
	}
	whole := s.tok.Encode(c+k, s.bos, false)
	ctx = s.tok.Encode(c, s.bos, false)
	if len(ctx) == 0 {
		return nil, nil, fmt.Errorf("context %q encodes to no tokens", r.Context)
	}
	if len(whole) > len(ctx) {
		cont = whole[len(ctx):]
	}
	return ctx, cont, nil
}

// prepared is one request ready for the model.
type prepared struct {
	idx     int
	inp     []int32 // (ctx+cont)[-(maxLen+1):][:-1]
	targets []int32 // the continuation tokens, predicted by inp's last rows
	trunc   int
}

// prepare encodes r and applies the harness's left truncation. A
// continuation that is empty or longer than max_length is an error (the
// harness asserts both).
func (s *Scorer) prepare(i int, r Request) (prepared, error) {
	ctx, cont, err := s.Encode(r)
	if err != nil {
		return prepared{}, err
	}
	switch {
	case len(cont) == 0:
		return prepared{}, fmt.Errorf("continuation %q encodes to no tokens", r.Continuation)
	case len(cont) > s.maxLen:
		return prepared{}, fmt.Errorf("%w: %d tokens, context %d", ErrTooLong, len(cont), s.maxLen)
	}
	all := make([]int32, 0, len(ctx)+len(cont))
	for _, t := range ctx {
		all = append(all, int32(t))
	}
	for _, t := range cont {
		all = append(all, int32(t))
	}
	trunc := max(0, len(all)-(s.maxLen+1))
	all = all[trunc:]
	return prepared{idx: i, inp: all[:len(all)-1], targets: all[len(all)-len(cont):], trunc: trunc}, nil
}

// ErrTooLong marks a request whose continuation alone exceeds the
// model's context: the harness asserts len(continuation) <= max_length,
// so no harness-faithful score exists for it.
var ErrTooLong = errors.New("continuation is longer than the model's context")

// Score answers every request. Requests whose model inputs are identical
// share one forward pass (for one-token answers such as BoolQ's " no" /
// " yes" the input is the context alone: the harness's logits cache does
// the same). Inputs are sorted by length, longest first, and batched with
// right padding as in the harness: in a causal model padding after a
// sequence cannot change its outputs. progress, if set, is called after
// each batch with the number of requests answered so far.
func (s *Scorer) Score(reqs []Request, progress func(done, total int)) ([]Result, error) {
	ps := make([]prepared, len(reqs))
	for i, r := range reqs {
		p, err := s.prepare(i, r)
		if err != nil {
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		ps[i] = p
	}
	return s.run(ps, progress)
}

// run scores prepared requests; p.idx must number them 0..len(ps)-1.
func (s *Scorer) run(ps []prepared, progress func(done, total int)) ([]Result, error) {
	groups := group(ps)
	out := make([]Result, len(ps))
	done := 0
	for i := 0; i < len(groups); {
		t := len(groups[i].inp)
		j := min(len(groups), i+s.batchFor(t))
		if err := s.scoreBatch(groups[i:j], t, out); err != nil {
			return nil, err
		}
		for _, g := range groups[i:j] {
			done += len(g.members)
		}
		i = j
		if progress != nil {
			progress(done, len(ps))
		}
	}
	return out, nil
}

// inputGroup is one distinct model input and the requests that read it.
type inputGroup struct {
	inp     []int32
	members []prepared
}

// group merges requests with the same input, longest inputs first (ties
// in request order, so runs are reproducible).
func group(ps []prepared) []inputGroup {
	var groups []inputGroup
	index := map[string]int{}
	for _, p := range ps {
		key := tokenKey(p.inp)
		g, ok := index[key]
		if !ok {
			g = len(groups)
			index[key] = g
			groups = append(groups, inputGroup{inp: p.inp})
		}
		groups[g].members = append(groups[g].members, p)
	}
	sort.SliceStable(groups, func(a, b int) bool { return len(groups[a].inp) > len(groups[b].inp) })
	return groups
}

func tokenKey(ids []int32) string {
	b := make([]byte, 4*len(ids))
	for i, id := range ids {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(id))
	}
	return string(b)
}

func (s *Scorer) batchFor(t int) int {
	if s.batch > 0 {
		return s.batch
	}
	return max(1, 4096/t)
}

// scoreBatch runs one forward pass over the groups' inputs, each
// right-padded to t tokens (with token 0, which every vocabulary has), and
// scores every member's continuation into out.
func (s *Scorer) scoreBatch(gs []inputGroup, t int, out []Result) error {
	toks := make([]int32, len(gs)*t)
	for k, g := range gs {
		copy(toks[k*t:], g.inp)
	}
	h, err := s.st.Forward(toks, nil, len(gs), t, false)
	if err != nil {
		return err
	}
	dim := s.w.Cfg.Dim
	for k, g := range gs {
		for _, p := range g.members {
			first := k*t + len(p.inp) - len(p.targets)
			rows := h[first*dim : (first+len(p.targets))*dim]
			ll, greedy := s.continuationLogProb(rows, p.targets)
			out[p.idx] = Result{LogLik: ll, Greedy: greedy, ContTokens: len(p.targets), Truncated: p.trunc}
		}
	}
	return nil
}

// headRowsBudget bounds rows × vocab logits held at once (as the engine's
// own head chunks do).
const headRowsBudget = 1 << 22

// continuationLogProb applies the final RMSNorm and the LM head to the
// hidden rows h (row r predicts targets[r]) and returns Σ log p(target)
// and whether every target is the row's argmax (first maximum on ties,
// like torch.argmax). Log-softmax is taken in float64.
func (s *Scorer) continuationLogProb(h []float32, targets []int32) (float64, bool) {
	c := s.w.Cfg
	v, d := c.Vocab, c.Dim
	chunk := max(1, min(len(targets), headRowsBudget/v))
	if len(s.logits) < chunk*v {
		s.logits = make([]float32, chunk*v)
	}
	sum, greedy := 0.0, true
	for r0 := 0; r0 < len(targets); r0 += chunk {
		n := min(chunk, len(targets)-r0)
		lg := s.logits[:n*v]
		s.st.LogitsInto(lg, h[r0*d:(r0+n)*d], n)
		for r := 0; r < n; r++ {
			row := lg[r*v : (r+1)*v]
			tgt := targets[r0+r]
			lse, arg := logSumExpArgmax(row)
			sum += float64(row[tgt]) - lse
			greedy = greedy && arg == int(tgt)
		}
	}
	return sum, greedy
}

// logSumExpArgmax returns log Σ exp(row) in float64 and the first index of
// the maximum.
func logSumExpArgmax(row []float32) (float64, int) {
	arg := 0
	for i, x := range row {
		if x > row[arg] {
			arg = i
		}
	}
	mx := float64(row[arg])
	var z float64
	for _, x := range row {
		z += math.Exp(float64(x) - mx)
	}
	return mx + math.Log(z), arg
}
