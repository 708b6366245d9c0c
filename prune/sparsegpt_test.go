package prune

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"testing"
)

// sgptTestLayer is a random layer with its calibration inputs and Hessian.
type sgptTestLayer struct {
	out, in, tokens int
	w               []float32
	x               []float32 // tokens×in
	h               *Hessian
}

// sgptNewLayer draws correlated inputs X = Z·A·diag(s) (s log-normal, so
// channel norms differ as in real activations), added to H in windows of
// 128 tokens; dead lists input channels forced to zero.
func sgptNewLayer(seed uint64, out, in, tokens int, dead ...int) *sgptTestLayer {
	rng := rand.New(rand.NewPCG(seed, 7))
	l := &sgptTestLayer{out: out, in: in, tokens: tokens}
	l.x = hessTestInputs(rng, tokens, in)
	for j := range in {
		s := math.Exp(rng.NormFloat64())
		for r := range tokens {
			l.x[r*in+j] *= float32(s)
		}
	}
	for _, j := range dead {
		for r := range tokens {
			l.x[r*in+j] = 0
		}
	}
	l.w = make([]float32, out*in)
	for i := range l.w {
		l.w[i] = float32(rng.NormFloat64())
	}
	l.h = NewHessian(in)
	for r0 := 0; r0 < tokens; r0 += 128 {
		r1 := min(r0+128, tokens)
		l.h.Add(l.x[r0*in:r1*in], r1-r0, in, 1)
	}
	return l
}

// reconErr is ‖X·Wᵀ − X·Ŵᵀ‖²_F in float64.
func (l *sgptTestLayer) reconErr(pruned []float32) float64 {
	var sum float64
	for r := range l.tokens {
		x := l.x[r*l.in : (r+1)*l.in]
		for o := range l.out {
			var d float64
			for j, xv := range x {
				d += float64(xv) * (float64(l.w[o*l.in+j]) - float64(pruned[o*l.in+j]))
			}
			sum += d * d
		}
	}
	return sum
}

func (l *sgptTestLayer) run(t *testing.T, cfg SparseGPTConfig) ([]float32, *SGPTResult) {
	t.Helper()
	w := slices.Clone(l.w)
	res, err := SparseGPT(w, l.out, l.in, l.h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w, res
}

func TestSparseGPTZeroSparsityLeavesWeights(t *testing.T) {
	l := sgptNewLayer(1, 24, 300, 512)
	w, res := l.run(t, SparseGPTConfig{Sparsity: 0})
	if res.Pruned != 0 || res.Loss != 0 {
		t.Fatalf("pruned %d, loss %g", res.Pruned, res.Loss)
	}
	for i := range w {
		if math.Float32bits(w[i]) != math.Float32bits(l.w[i]) || !res.Keep[i] {
			t.Fatalf("weight %d changed: %v → %v", i, l.w[i], w[i])
		}
	}
}

func sgptCheckPruned(t *testing.T, w []float32, res *SGPTResult) {
	t.Helper()
	n := 0
	for i, k := range res.Keep {
		if !k {
			n++
			if w[i] != 0 {
				t.Fatalf("pruned weight %d = %v", i, w[i])
			}
		}
		if math.IsNaN(float64(w[i])) || math.IsInf(float64(w[i]), 0) {
			t.Fatalf("weight %d = %v", i, w[i])
		}
	}
	if n != res.Pruned {
		t.Fatalf("Pruned = %d, Keep has %d false", res.Pruned, n)
	}
}

func TestSparseGPTExactSparsity(t *testing.T) {
	l := sgptNewLayer(2, 37, 300, 512) // blocks of 128, 128, 44
	for _, p := range []float64{0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.999} {
		for _, bs := range []int{0, 7, 300} {
			w, res := l.run(t, SparseGPTConfig{Sparsity: p, BlockSize: bs})
			sgptCheckPruned(t, w, res)
			if want := PruneCount(37*300, p); res.Pruned != want {
				t.Errorf("p=%v bs=%d: pruned %d, want %d", p, bs, res.Pruned, want)
			}
		}
	}
}

func TestSparseGPTNMExactCounts(t *testing.T) {
	l := sgptNewLayer(3, 20, 96, 256)
	for _, nm := range [][2]int{{2, 4}, {1, 4}, {3, 4}, {4, 8}, {4, 4}} {
		// BlockSize 10 is rounded down to a multiple of M.
		w, res := l.run(t, SparseGPTConfig{N: nm[0], M: nm[1], BlockSize: 10})
		sgptCheckPruned(t, w, res)
		for r := range l.out {
			for g := 0; g < l.in; g += nm[1] {
				kept := 0
				for _, k := range res.Keep[r*l.in+g : r*l.in+g+nm[1]] {
					if k {
						kept++
					}
				}
				if kept != nm[0] {
					t.Fatalf("%d:%d row %d group %d keeps %d", nm[0], nm[1], r, g, kept)
				}
			}
		}
	}
	_, err := SparseGPT(make([]float32, 2*6), 2, 6, NewHessian(6), SparseGPTConfig{N: 2, M: 4})
	if !errors.Is(err, ErrNMNotDivisible) {
		t.Errorf("in=6 with 2:4: err = %v", err)
	}
}

func TestSparseGPTRejectsBadArguments(t *testing.T) {
	h := NewHessian(8)
	h.Add(make([]float32, 8), 1, 8, 1)
	w := make([]float32, 16)
	hNaN := NewHessian(8)
	hNaN.H[9] = math.NaN()
	for name, c := range map[string]struct {
		w   []float32
		out int
		h   *Hessian
		cfg SparseGPTConfig
	}{
		"sparsity 1":   {w, 2, h, SparseGPTConfig{Sparsity: 1}},
		"sparsity <0":  {w, 2, h, SparseGPTConfig{Sparsity: -0.1}},
		"NaN sparsity": {w, 2, h, SparseGPTConfig{Sparsity: math.NaN()}},
		"N > M":        {w, 2, h, SparseGPTConfig{N: 5, M: 4}},
		"N = 0":        {w, 2, h, SparseGPTConfig{N: 0, M: 4}},
		"shape":        {w, 3, h, SparseGPTConfig{}},
		"hessian":      {w, 2, NewHessian(4), SparseGPTConfig{}},
		"NaN hessian":  {w, 2, hNaN, SparseGPTConfig{}},
		"NaN weight":   {append([]float32{float32(math.NaN())}, w[1:]...), 2, h, SparseGPTConfig{}},
	} {
		if _, err := SparseGPT(slices.Clone(c.w), c.out, 8, c.h, c.cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestSparseGPTNotPositiveDefinite(t *testing.T) {
	h := NewHessian(2)
	copy(h.H, []float64{1, 2, 2, 1}) // eigenvalues 3 and −1; damping adds 0.01
	_, err := SparseGPT([]float32{1, 2}, 1, 2, h, SparseGPTConfig{Sparsity: 0.5})
	if !errors.Is(err, ErrHessianNotPD) {
		t.Fatalf("err = %v", err)
	}
	t.Log(err)
}

func TestSparseGPTDeadInputs(t *testing.T) {
	dead := []int{0, 7, 150, 299}
	l := sgptNewLayer(4, 16, 300, 512, dead...)
	w, res := l.run(t, SparseGPTConfig{Sparsity: 0.5})
	sgptCheckPruned(t, w, res)
	for r := range l.out {
		for _, j := range dead {
			// Score 0: pruned before any live weight.
			if res.Keep[r*l.in+j] {
				t.Fatalf("dead input %d of row %d kept", j, r)
			}
		}
	}
	// At sparsity 0 dead inputs keep their place but their weights are zeroed,
	// as in the reference; the live weights are untouched (their H block does
	// not couple to the dead ones and nothing is pruned).
	w, res = l.run(t, SparseGPTConfig{})
	for i, v := range w {
		isDead := slices.Contains(dead, i%l.in)
		if !res.Keep[i] || (isDead && v != 0) || (!isDead && v != l.w[i]) {
			t.Fatalf("sparsity 0, weight %d: %v → %v keep=%v", i, l.w[i], v, res.Keep[i])
		}
	}
	// A Hessian that saw no data at all is all dead: every weight goes to 0.
	w = slices.Clone(l.w[:4*l.in])
	if _, err := SparseGPT(w, 4, l.in, NewHessian(l.in), SparseGPTConfig{Sparsity: 0.5}); err != nil {
		t.Fatal(err)
	}
	for i, v := range w {
		if v != 0 {
			t.Fatalf("all-dead Hessian: weight %d = %v", i, v)
		}
	}
}

// sgptBaseline prunes a copy of w without weight updates: the lowest
// |W|·‖X_j‖ of every row (Wanda, act = column norms) or the lowest |W| of
// the matrix (magnitude, act = nil); groups of m columns keep n when m > 0.
func sgptBaseline(l *sgptTestLayer, p float64, act []float64, n, m int) []float32 {
	w := slices.Clone(l.w)
	score := func(i int) float64 {
		s := math.Abs(float64(w[i]))
		if act != nil {
			s *= act[i%l.in]
		}
		return s
	}
	prune := func(idx []int, k int) {
		slices.SortStableFunc(idx, func(a, b int) int {
			sa, sb := score(a), score(b)
			switch {
			case sa < sb:
				return -1
			case sa > sb:
				return 1
			}
			return 0
		})
		for _, i := range idx[:k] {
			w[i] = 0
		}
	}
	switch {
	case m > 0:
		for g := 0; g < len(w); g += m {
			prune([]int{g, g + 1, g + 2, g + 3}[:m], m-n)
		}
	case act != nil:
		for r := range l.out {
			idx := make([]int, l.in)
			for j := range idx {
				idx[j] = r*l.in + j
			}
			prune(idx, PruneCount(l.in, p))
		}
	default:
		idx := make([]int, len(w))
		for i := range idx {
			idx[i] = i
		}
		prune(idx, PruneCount(len(w), p))
	}
	return w
}

func TestSparseGPTReconstructionBeatsWandaAndMagnitude(t *testing.T) {
	l := sgptNewLayer(5, 64, 256, 512)
	norms := make([]float64, l.in)
	for r := range l.tokens {
		for j := range l.in {
			v := float64(l.x[r*l.in+j])
			norms[j] += v * v
		}
	}
	for j := range norms {
		norms[j] = math.Sqrt(norms[j])
	}
	for _, c := range []struct {
		name string
		cfg  SparseGPTConfig
	}{{"50%", SparseGPTConfig{Sparsity: 0.5}}, {"2:4", SparseGPTConfig{N: 2, M: 4}}} {
		w, res := l.run(t, c.cfg)
		sgpt := l.reconErr(w)
		wanda := l.reconErr(sgptBaseline(l, 0.5, norms, c.cfg.N, c.cfg.M))
		mag := l.reconErr(sgptBaseline(l, 0.5, nil, c.cfg.N, c.cfg.M))
		dense := l.reconErr(make([]float32, len(l.w)))
		t.Logf("%s: ‖XWᵀ−XŴᵀ‖²: sparsegpt %.6g (loss %.6g), wanda %.6g, magnitude %.6g, all-zero %.6g",
			c.name, sgpt, res.Loss, wanda, mag, dense)
		if !(sgpt < wanda && sgpt < mag) {
			t.Errorf("%s: sparsegpt %g not below wanda %g and magnitude %g", c.name, sgpt, wanda, mag)
		}
	}
}

func TestSparseGPTInverseSharedAndDeterministic(t *testing.T) {
	l := sgptNewLayer(6, 200, 160, 512)
	cfg := SparseGPTConfig{Sparsity: 0.6, BlockSize: 32}
	want, wantRes := l.run(t, cfg)
	inv, err := NewSGPTInverse(l.h, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The split of rows over goroutines must not change a single bit.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for _, procs := range []int{1, 3} {
		runtime.GOMAXPROCS(procs)
		w := slices.Clone(l.w)
		res, err := SparseGPTWithInverse(w, l.out, l.in, inv, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Loss != wantRes.Loss || !slices.Equal(res.Keep, wantRes.Keep) {
			t.Fatalf("GOMAXPROCS=%d: loss %v vs %v or masks differ", procs, res.Loss, wantRes.Loss)
		}
		for i := range w {
			if math.Float32bits(w[i]) != math.Float32bits(want[i]) {
				t.Fatalf("GOMAXPROCS=%d: weight %d differs", procs, i)
			}
		}
	}
}

func TestSGPTBlockQuotas(t *testing.T) {
	// 144 over widths 16, 16, 8 of 40: shares 57.6, 57.6, 28.8.
	if got := sgptBlockQuotas(144, 40, 16); !slices.Equal(got, []int{58, 57, 29}) {
		t.Errorf("quotas = %v", got)
	}
	rng := rand.New(rand.NewPCG(8, 8))
	for range 1000 {
		in, bs := 1+rng.IntN(1000), 1+rng.IntN(200)
		rows := 1 + rng.IntN(50)
		total := rng.IntN(rows*in + 1)
		q := sgptBlockQuotas(total, in, bs)
		sum := 0
		for b, v := range q {
			width := min(bs, in-b*bs)
			exact := float64(total) * float64(width) / float64(in)
			if float64(v) < math.Floor(exact) || float64(v) > math.Ceil(exact) || v > rows*width {
				t.Fatalf("total %d in %d bs %d: block %d gets %d (share %g)", total, in, bs, b, v, exact)
			}
			sum += v
		}
		if sum != total {
			t.Fatalf("total %d in %d bs %d: quotas sum to %d", total, in, bs, sum)
		}
	}
}

func TestSGPTSelectLowest(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, n := range []int{1, 2, 17, 100, 5000} {
		for _, distinct := range []int{2, 50, 1 << 30} { // many ties, some, none
			score := make([]float64, n)
			for i := range score {
				score[i] = float64(rng.IntN(distinct))
			}
			sorted := make([]int32, n)
			for i := range sorted {
				sorted[i] = int32(i)
			}
			slices.SortStableFunc(sorted, func(a, b int32) int {
				switch {
				case score[a] < score[b]:
					return -1
				case score[a] > score[b]:
					return 1
				}
				return 0
			})
			for _, k := range []int{0, 1, n / 3, n / 2, n - 1, n} {
				idx := slices.Clone(sorted)
				rng.Shuffle(n, func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
				sgptSelectLowest(idx, score, k)
				got := slices.Clone(idx[:k])
				slices.Sort(got)
				want := slices.Clone(sorted[:k])
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("n=%d distinct=%d k=%d: wrong selection", n, distinct, k)
				}
			}
		}
	}
}

// sgptGolden is prune/testdata/sparsegpt/case1.json, written by
// tools/reference/sparsegpt_ref.py.
type sgptGolden struct {
	Out, In, Blocksize int
	Percdamp           float64
	Batches            []sgptBatch
	W, Hessian         []float64
	Cases              []struct {
		Name     string
		Sparsity float64
		N, M     int
		W        []float64
		Keep     []int
		Loss     float64
	}
}

// sgptBatch is one calibration batch of a golden file: Rows rows of In
// inputs (float32-exact), counted as Samples samples.
type sgptBatch struct {
	Samples, Rows int
	X             []float64
}

// readGolden decodes the JSON golden file path into g.
func readGolden(t *testing.T, path string, g any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, g); err != nil {
		t.Fatal(err)
	}
}

// goldenHessian accumulates a golden file's batches into a Hessian of in
// inputs.
func goldenHessian(in int, batches []sgptBatch) *Hessian {
	h := NewHessian(in)
	for _, b := range batches {
		x := make([]float32, len(b.X))
		for i, v := range b.X {
			x[i] = float32(v) // exact: the reference rounded to float32
		}
		h.Add(x, b.Rows, in, b.Samples)
	}
	return h
}

func sgptRelDiff(got, want []float64) float64 {
	var d, s float64
	for i := range want {
		d = max(d, math.Abs(got[i]-want[i]))
		s = max(s, math.Abs(want[i]))
	}
	return d / s
}

func TestSparseGPTGolden(t *testing.T) {
	var g sgptGolden
	readGolden(t, "testdata/sparsegpt/case1.json", &g)
	h := goldenHessian(g.In, g.Batches)
	if d := sgptRelDiff(h.H, g.Hessian); d > 1e-12 {
		t.Errorf("Hessian: relative difference %g", d)
	}
	t.Logf("Hessian: relative difference %.2g", sgptRelDiff(h.H, g.Hessian))
	for _, c := range g.Cases {
		cfg := SparseGPTConfig{Sparsity: c.Sparsity, N: c.N, M: c.M, BlockSize: g.Blocksize, PercDamp: g.Percdamp}
		inv, err := NewSGPTInverse(h, cfg.PercDamp)
		if err != nil {
			t.Fatal(err)
		}
		if err := sgptCheck(len(g.W), g.Out, g.In, &cfg); err != nil {
			t.Fatal(err)
		}
		w := slices.Clone(g.W) // float64 path: compare without float32 rounding
		res := sgptRun(w, g.Out, g.In, inv, cfg)
		for i, k := range c.Keep {
			if res.Keep[i] != (k == 1) {
				t.Fatalf("%s: mask differs at %d", c.Name, i)
			}
		}
		dw := sgptRelDiff(w, c.W)
		dl := math.Abs(res.Loss-c.Loss) / c.Loss
		t.Logf("%s: weights rel diff %.2g, loss %.10g vs %.10g (rel %.2g), pruned %d",
			c.Name, dw, res.Loss, c.Loss, dl, res.Pruned)
		if dw > 1e-9 || dl > 1e-9 {
			t.Errorf("%s: weights differ by %g, loss by %g (relative)", c.Name, dw, dl)
		}
		// The float32 API gives the same result rounded.
		w32 := make([]float32, len(g.W))
		for i, v := range g.W {
			w32[i] = float32(v)
		}
		res32, err := SparseGPT(w32, g.Out, g.In, h, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range w32 {
			if !res32.Keep[i] != (c.Keep[i] == 0) || math.Abs(float64(v)-c.W[i]) > 1e-6*math.Abs(c.W[i]) {
				t.Fatalf("%s: float32 API weight %d = %v, want %v", c.Name, i, v, c.W[i])
			}
		}
	}
}
