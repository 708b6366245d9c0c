package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/unipruning/unipruning/coordinator"
	"github.com/unipruning/unipruning/eval"
	"github.com/unipruning/unipruning/internal/sysmem"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/nn"
	"github.com/unipruning/unipruning/shard"
)

// Streaming modes of an evaluation (--stream).
const (
	streamAuto = "auto" // in memory when the whole model fits, else layer-streamed
	streamOn   = "on"   // always layer-streamed
	streamOff  = "off"  // always the whole model in memory
)

// memFlags are the memory options of an evaluation: eval's --memory,
// --stream, --spill-dir, and the same as --eval-memory … on prune, extract
// and run.
type memFlags struct {
	memory, stream, spillDir string
	prefix                   string // "" or "eval-": how the flags are named
}

func (m *memFlags) register(fl *pflag.FlagSet, prefix string) {
	m.prefix = prefix
	fl.StringVar(&m.memory, prefix+"memory", "", "memory budget, e.g. 6GiB or 512MiB (default: the machine's RAM or the cgroup limit, whichever is smaller)")
	fl.StringVar(&m.stream, prefix+"stream", streamAuto, "auto: whole model in memory when it fits the budget, else layer by layer; "+
		"on: always layer by layer (one decoder layer resident, same perplexity bit for bit); off: always whole")
	fl.StringVar(&m.spillDir, prefix+"spill-dir", "", "when streaming, keep the activations of all windows in a temporary file here "+
		"(default: in memory if they fit the budget, else in the system's temporary directory)")
}

// mode is --stream, auto when unset (flag structs built in code).
func (m *memFlags) mode() string {
	if m.stream == "" {
		return streamAuto
	}
	return m.stream
}

func (m *memFlags) validate() error {
	switch m.mode() {
	case streamAuto, streamOn, streamOff:
	default:
		return badFlag(m.prefix+"stream", m.stream, "want auto, on or off")
	}
	if m.memory != "" {
		if _, err := parseSize(m.memory); err != nil {
			return badFlag(m.prefix+"memory", m.memory, "%v", err)
		}
	}
	if m.spillDir != "" {
		if st, err := os.Stat(m.spillDir); err != nil || !st.IsDir() {
			return badFlag(m.prefix+"spill-dir", m.spillDir, "not a directory")
		}
	}
	return nil
}

// budget is --memory, or what the machine offers this process.
func (m *memFlags) budget() (uint64, string, error) {
	if m.memory != "" {
		b, err := parseSize(m.memory)
		return b, "--" + m.prefix + "memory", err
	}
	return memoryLimit()
}

// memoryLimit is what the machine offers: its RAM or the cgroup limit,
// whichever is smaller (a variable so tests can shrink the machine).
var memoryLimit = sysmem.MemoryLimit

// setGoLimit tells the Go runtime the budget (never above what the machine
// offers), so the collector works harder near it instead of letting the
// heap grow to twice the live data past it. GOMEMLIMIT, when set, wins.
func setGoLimit(budget uint64) {
	if lim, _, err := memoryLimit(); err == nil {
		budget = min(budget, lim)
	}
	if os.Getenv("GOMEMLIMIT") == "" && budget > 0 && budget < 1<<62 {
		debug.SetMemoryLimit(int64(budget))
	}
}

// notEnough is the refusal before any work: what a step needs, what the
// machine (or the budget) offers, and where that figure comes from.
func notEnough(what string, need, offer uint64, source string) error {
	return fmt.Errorf("%s needs %s, the machine offers %s (%s)", what, gib(need), gib(offer), source)
}

// fixedAllowance is what every check adds for the Go runtime, the
// tokenizer and the texts (the same as eval's and layerwise's estimates).
const fixedAllowance = 96 << 20

func gib(b uint64) string { return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30)) }

// checkFits refuses a one-process command whose estimated footprint
// exceeds what the machine or cgroup offers.
func checkFits(what string, need uint64) error {
	offer, src, err := memoryLimit()
	if err != nil {
		logf("memory check skipped: %v", err)
		return nil
	}
	setGoLimit(offer)
	if need > offer {
		return notEnough(what, need, offer, src)
	}
	logf("memory: %s needs about %s of the %s offered (%s)", what, gib(need), gib(offer), src)
	return nil
}

// parseSize reads a byte count: a number with an optional unit B, K/KB/KiB,
// M/MB/MiB, G/GB/GiB, T/TB/TiB (powers of 1024; case-insensitive).
func parseSize(s string) (uint64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := uint64(1)
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"tib", 1 << 40}, {"gib", 1 << 30}, {"mib", 1 << 20}, {"kib", 1 << 10},
		{"tb", 1 << 40}, {"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10},
		{"t", 1 << 40}, {"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}, {"b", 1}} {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 || v*float64(mult) >= 1<<63 {
		return 0, fmt.Errorf("not a size (want e.g. 6GiB, 512MiB)")
	}
	return uint64(v * float64(mult)), nil
}

// scorer evaluates one model: held in memory, or streamed from its
// checkpoint layer by layer, as --stream and the budget decide per text.
type scorer struct {
	ck  *model.Checkpoint
	w   *nn.Weights[float32] // nil until loaded (or when streaming)
	mem *memFlags
}

func newScorer(ck *model.Checkpoint, w *nn.Weights[float32], mem *memFlags) *scorer {
	if mem == nil {
		mem = &memFlags{stream: streamAuto}
	}
	return &scorer{ck: ck, w: w, mem: mem}
}

// weights returns the whole model in memory, loading it after checking
// that it fits (zero-shot tasks and the in-memory path need it).
func (s *scorer) weights(what string) (*nn.Weights[float32], error) {
	if s.w != nil {
		return s.w, nil
	}
	need := eval.InMemoryFootprint(s.ck.Config, 1, 1, 1).Total()
	offer, src, err := s.mem.budget()
	if err != nil {
		return nil, err
	}
	setGoLimit(offer)
	if need > offer {
		return nil, notEnough(what+" with the whole model in memory", need, offer, src)
	}
	if s.w, err = nn.Load[float32](s.ck, nn.Whole(s.ck.Config)); err != nil {
		return nil, err
	}
	return s.w, nil
}

// perplexity scores the windows in memory or streamed, whichever the mode
// and the budget allow (the same bits either way).
func (s *scorer) perplexity(ws [][]int32, batch int, progress func(done, total int)) (eval.NLL, error) {
	c, t := s.ck.Config, len(ws[0])
	batch = min(max(1, batch), len(ws)) // estimates count the batches that run
	offer, src, err := s.mem.budget()
	if err != nil {
		return eval.NLL{}, err
	}
	setGoLimit(offer)
	inMem := eval.InMemoryFootprint(c, len(ws), t, batch)
	mode := s.mem.mode()
	if s.w != nil || mode == streamOff || (mode == streamAuto && inMem.Total() <= offer) {
		if s.w == nil && inMem.Total() > offer {
			return eval.NLL{}, notEnough(fmt.Sprintf("eval of %d windows of %d tokens with the whole model in memory (--%sstream off)",
				len(ws), t, s.mem.prefix), inMem.Total(), offer, src)
		}
		w, err := s.weights("eval")
		if err != nil {
			return eval.NLL{}, err
		}
		return eval.Perplexity(nn.NewStage(w), ws, batch, progress)
	}
	spill := s.mem.spillDir
	keep := eval.StreamedFootprint(c, len(ws), t, batch, false)
	if spill == "" && keep.Total() > offer {
		spill = os.TempDir()
	}
	fp := keep
	if spill != "" {
		fp = eval.StreamedFootprint(c, len(ws), t, batch, true)
	}
	if fp.Total() > offer {
		return eval.NLL{}, notEnough(fmt.Sprintf("eval streamed layer by layer (batches of %d windows of %d tokens)", batch, t),
			fp.Total(), offer, src)
	}
	where := "in memory"
	if spill != "" {
		where = "spilled to " + spill
	}
	logf("eval streamed layer by layer (activations %s): about %s of the %s offered (%s); the whole model would need %s",
		where, gib(fp.Total()), gib(offer), src, gib(inMem.Total()))
	return eval.PerplexityStreamed(s.ck, ws, eval.StreamOptions{Batch: batch, SpillDir: spill,
		Progress: func(d, tot int) {
			if progress != nil {
				progress(d*len(ws)/tot, len(ws))
			}
		}})
}

// checkSearchFits refuses a one-process search (search, run) whose memory
// plan (shard.PlanMemory, what search --dry-run prints) exceeds what the
// machine or cgroup offers, before the run directory is made.
func checkSearchFits(c *model.Config, spec job.Spec, shards int) error {
	parts, err := coordinator.PlanSpec(c, shards, spec)
	if err != nil {
		return err
	}
	plan := shard.PlanMemory(c, spec, parts, 0)
	// + the allowance the eval and prune checks make for the Go runtime,
	// the tokenizer and the calibration text, which the plan leaves out
	return checkFits(fmt.Sprintf("search (%s, %d in-process shards, seqlen %d)", spec.Mode, len(parts), spec.Seqlen),
		uint64(plan.BytesTotal)+fixedAllowance)
}

// saveFootprint estimates writing a pruned output (model.SaveLike): one
// tensor at a time as stored bytes and as float32, plus a pruned target's
// float32 and byte copies read back from the spill, plus the bit-packed
// masks of every target and the fixed allowance.
func saveFootprint(ck *model.Checkpoint) uint64 {
	var largest, target, targets uint64
	for _, t := range ck.Tensors() {
		n := uint64(t.Elements())
		largest = max(largest, n*(4+storedSize(t.DType)))
	}
	for _, t := range model.Targets(ck.Config) {
		out, in := t.Matrix.Shape(ck.Config)
		n := uint64(out) * uint64(in)
		target, targets = max(target, n), targets+n
	}
	return largest + 8*target + targets/8 + fixedAllowance
}

func storedSize(dtype string) uint64 {
	switch dtype {
	case "F32":
		return 4
	case "F64":
		return 8
	}
	return 2
}
