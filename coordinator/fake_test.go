package coordinator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/prune"
	"github.com/unipruning/unipruning/shardrpc"
	"github.com/unipruning/unipruning/transport"
)

// world is a set of fake shard processes: their state survives a change of
// epoch (new clients), as a live process's does, and their images go to
// one in-memory blob store. It records every call.
type world struct {
	mu     sync.Mutex
	blobs  map[string][]byte
	procs  map[string]*proc
	calls  []string // "id method k"
	onStep func(id string, k int) error
	// fence is the epoch a forged assign raised every shard to (0: none);
	// Status reports it.
	fence uint64
}

// Status reports the shard's epoch: the world's fence, if raised.
func (s *fakeShard) Status(ctx context.Context) (shardrpc.Status, error) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	return shardrpc.Status{ID: s.id, Epoch: max(s.epoch, s.w.fence)}, nil
}

// dropBlobs deletes the stored images whose content starts with prefix
// (a wiped or damaged blob store).
func (w *world) dropBlobs(match func(img string) bool) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for k, b := range w.blobs {
		if match(string(b)) {
			delete(w.blobs, k)
			n++
		}
	}
	return n
}

// proc is one fake shard process.
type proc struct {
	spec  string // hash of the assigned spec ("" until assigned)
	part  nn.Part
	step  int // last step whose τ was applied
	phase string
}

func newWorld() *world {
	return &world{blobs: map[string][]byte{}, procs: map[string]*proc{}}
}

// dial is NodeConfig.Dial for the fake processes.
func (w *world) dial(id string, part nn.Part, epoch uint64) shardrpc.API {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.procs[id] == nil {
		w.procs[id] = &proc{}
	}
	return &fakeShard{w: w, id: id, part: part, epoch: epoch}
}

func (w *world) record(id, method string, k int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, fmt.Sprintf("%s %s %d", id, method, k))
}

func (w *world) callsOf(id, method string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, c := range w.calls {
		if f := splitCall(c); f[0] == id && f[1] == method {
			out = append(out, c)
		}
	}
	return out
}

func splitCall(c string) [3]string {
	var f [3]string
	fmt.Sscan(c, &f[0], &f[1], &f[2])
	return f
}

func (w *world) put(img string) job.Ref {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := []byte(img)
	key := job.SHA256(b)
	w.blobs[key] = b
	return job.RefOf(key, b)
}

func (w *world) get(ref job.Ref) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	b, ok := w.blobs[ref.Key]
	if !ok {
		return "", fmt.Errorf("%w: %s", transport.ErrNotFound, ref.Key)
	}
	return string(b), nil
}

// fakeShard is a client of a fake process under one epoch. Its |z| values
// are fixed per layer, so the model-wide threshold is real selection over
// a known set; steps must come in order, as the real worker demands.
type fakeShard struct {
	w     *world
	id    string
	part  nn.Part
	epoch uint64
}

var _ shardrpc.API = (*fakeShard)(nil)

func (s *fakeShard) ID() string    { return s.id }
func (s *fakeShard) Part() nn.Part { return s.part }

func (s *fakeShard) proc() *proc {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	return s.w.procs[s.id]
}

// fenced refuses calls below the world's fence, as a real shard does.
func (s *fakeShard) fenced() error {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if s.epoch < s.w.fence {
		return fmt.Errorf("shard %s at epoch %d, call at %d: %w", s.id, s.w.fence, s.epoch, shardrpc.ErrStaleEpoch)
	}
	return nil
}

func (s *fakeShard) Assign(ctx context.Context, spec job.Spec, stage, stages int) (uint64, error) {
	if err := s.fenced(); err != nil {
		return 0, err
	}
	s.w.record(s.id, "assign", int(s.epoch))
	p := s.proc()
	if p.spec != spec.Hash() || p.part != s.part {
		*p = proc{spec: spec.Hash(), part: s.part}
	}
	return s.Count(ctx)
}

func (s *fakeShard) Count(ctx context.Context) (uint64, error) {
	return uint64(len(s.partition().Values[0]) * (s.part.To - s.part.From)), nil
}

func (s *fakeShard) at(k int, phase, want string) error {
	p := s.proc()
	if p.spec == "" {
		return errors.New("not assigned")
	}
	if k != p.step+1 || p.phase != want {
		return fmt.Errorf("shard %s at step %d (%s) asked to %s step %d", s.id, p.step, p.phase, phase, k)
	}
	p.phase = phase
	return nil
}

func (s *fakeShard) Step(ctx context.Context, k int) (shardrpc.StepResult, error) {
	if err := s.fenced(); err != nil {
		return shardrpc.StepResult{}, err
	}
	s.w.record(s.id, "step", k)
	if s.w.onStep != nil {
		if err := s.w.onStep(s.id, k); err != nil {
			return shardrpc.StepResult{}, err
		}
	}
	if err := s.at(k, "step", ""); err != nil {
		return shardrpc.StepResult{}, err
	}
	r := shardrpc.StepResult{Step: k, From: s.part.From}
	for l := s.part.From; l < s.part.To; l++ {
		r.GradSumSq = append(r.GradSumSq, float64(l+1))
	}
	if s.part.Head {
		r.Loss, r.Count = float64(10*k), 4
	}
	return r, nil
}

func (s *fakeShard) Update(ctx context.Context, k int, lr, clip float64) error {
	s.w.record(s.id, "update", k)
	return s.at(k, "update", "step")
}

func (s *fakeShard) partition() *prune.SlicePartition {
	p := &prune.SlicePartition{}
	for l := s.part.From; l < s.part.To; l++ {
		v := make([]float32, 8)
		for i := range v {
			v[i] = float32(l*8 + i + 1)
		}
		p.Values = append(p.Values, v)
		p.Shapes = append(p.Shapes, [2]int{2, 4})
	}
	return p
}

func (s *fakeShard) Histogram(ctx context.Context, q prune.HistQuery, dst []uint64) error {
	return s.partition().Histogram(q, dst)
}

func (s *fakeShard) CountEqual(ctx context.Context, key uint32) (uint64, error) {
	return s.partition().CountEqual(key)
}

func (s *fakeShard) ApplyTau(ctx context.Context, k int, tau float32) error {
	s.w.record(s.id, "apply_tau", k)
	if err := s.at(k, "", "update"); err != nil {
		return err
	}
	s.proc().step = k
	return nil
}

func (s *fakeShard) image(kind string) string {
	return fmt.Sprintf("%s layers [%d,%d) step %d", kind, s.part.From, s.part.To, s.proc().step)
}

func (s *fakeShard) Checkpoint(ctx context.Context) (job.Ref, error) {
	s.w.record(s.id, "checkpoint", s.proc().step)
	return s.w.put(s.image("checkpoint")), nil
}

func (s *fakeShard) Restore(ctx context.Context, ref job.Ref) error {
	p := s.proc()
	if ref.Key == "" {
		s.w.record(s.id, "restore", 0)
		p.step, p.phase = 0, ""
		return nil
	}
	img, err := s.w.get(ref)
	if err != nil {
		return err
	}
	var from, to, step int
	if _, err := fmt.Sscanf(img, "checkpoint layers [%d,%d) step %d", &from, &to, &step); err != nil || from != s.part.From || to != s.part.To {
		return fmt.Errorf("shard %s [%d,%d) cannot restore %q", s.id, s.part.From, s.part.To, img)
	}
	s.w.record(s.id, "restore", step)
	p.step, p.phase = step, ""
	return nil
}

func (s *fakeShard) GammaPart(ctx context.Context) (job.Ref, error) {
	return s.w.put(s.image("gamma")), nil
}

// gammaImages reads back the Γ parts named by refs.
func (w *world) gammaImages(refs []job.Ref) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i], _ = w.get(r)
	}
	return out
}

// steps lists the k of the recorded calls.
func steps(calls []string) []int {
	var ks []int
	for _, c := range calls {
		var k int
		fmt.Sscan(splitCall(c)[2], &k)
		ks = append(ks, k)
	}
	return slices.Clip(ks)
}
