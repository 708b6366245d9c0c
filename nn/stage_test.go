package nn

import (
	"math/rand/v2"
	"testing"

	"github.com/unipruning/unipruning/model"
)

func randomTokens(n, vocab int, seed uint64) []int32 {
	rng := rand.New(rand.NewPCG(seed, 3))
	t := make([]int32, n)
	for i := range t {
		t[i] = int32(rng.IntN(vocab))
	}
	return t
}

// TestChainedStagesBitwise: stages [0,2) + [2,5) give bitwise the same loss
// and gradients as one stage [0,5) — the property the cluster relies on.
func TestChainedStagesBitwise(t *testing.T) {
	c := storiesShapeConfig()
	c.MaxSeq = 64
	w := RandomWeights[float32](c, 11)
	b, tl := 3, 40
	tokens := randomTokens(b*tl, c.Vocab, 5)
	targets := Targets(tokens, b, tl)

	one := NewStage(w)
	one.EnableGrad(false)
	h, err := one.Forward(tokens, nil, b, tl, true)
	if err != nil {
		t.Fatal(err)
	}
	loss1, _, dh, err := one.HeadLoss(h, targets, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := one.Backward(dh); err != nil {
		t.Fatal(err)
	}

	first := NewStage(SubWeights(w, Part{From: 0, To: 2, Embed: true}))
	second := NewStage(SubWeights(w, Part{From: 2, To: 5, Head: true}))
	first.EnableGrad(false)
	second.EnableGrad(false)
	x, err := first.Forward(tokens, nil, b, tl, true)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := second.Forward(nil, append([]float32(nil), x...), b, tl, true)
	if err != nil {
		t.Fatal(err)
	}
	loss2, _, dh2, err := second.HeadLoss(h2, targets, true)
	if err != nil {
		t.Fatal(err)
	}
	dx, err := second.Backward(dh2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Backward(append([]float32(nil), dx...)); err != nil {
		t.Fatal(err)
	}
	if loss1 != loss2 {
		t.Fatalf("loss differs: %v vs %v", loss1, loss2)
	}
	for l := 0; l < c.Layers; l++ {
		st := first
		if l >= 2 {
			st = second
		}
		for m := model.Matrix(0); m < model.NumMatrices; m++ {
			a, bb := one.G.Blocks[l].Lin[m].W, st.G.Blocks[l].Lin[m].W
			for i := range a {
				if a[i] != bb[i] {
					t.Fatalf("layer %d %s: gradient %d differs: %v vs %v", l, m, i, a[i], bb[i])
				}
			}
		}
	}
}

// TestBatchIndependence: a window's loss does not depend on what else is
// in the batch (windows never attend to each other).
func TestBatchIndependence(t *testing.T) {
	c := storiesShapeConfig()
	c.MaxSeq = 64
	w := RandomWeights[float64](c, 2)
	tl := 17
	tokens := randomTokens(3*tl, c.Vocab, 9)
	s := NewStage(w)
	h, _ := s.Forward(tokens, nil, 3, tl, false)
	all, _, _, _ := s.HeadLoss(h, Targets(tokens, 3, tl), false)
	var parts float64
	for i := 0; i < 3; i++ {
		win := tokens[i*tl : (i+1)*tl]
		h, _ := s.Forward(win, nil, 1, tl, false)
		p, _, _, _ := s.HeadLoss(h, Targets(win, 1, tl), false)
		parts += p
	}
	if d := all - parts; d > 1e-9 || d < -1e-9 {
		t.Fatalf("batched loss %v != sum of single-window losses %v", all, parts)
	}
}

// TestGemmKernelsMatchNaive checks every compiled kernel against the naive
// triple loop, all transpositions, odd sizes and leading dimensions.
func TestGemmKernelsMatchNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, name := range Kernels() {
		for _, sz := range [][3]int{{1, 1, 1}, {3, 5, 7}, {17, 33, 9}, {64, 65, 130}} {
			m, n, k := sz[0], sz[1], sz[2]
			for _, ta := range []bool{false, true} {
				for _, tb := range []bool{false, true} {
					checkGemm(t, name, rng, ta, tb, m, n, k)
				}
			}
		}
	}
}

func checkGemm(t *testing.T, name string, rng *rand.Rand, ta, tb bool, m, n, k int) {
	lda, ldb, ldc := k+2, n+1, n+3
	ar, br := m, k
	if ta {
		lda, ar = m+1, k
	}
	if tb {
		ldb, br = k+1, n
	}
	a, b := randSlice(rng, ar*lda), randSlice(rng, br*ldb)
	c1 := randSlice(rng, m*ldc)
	c2 := append([]float32(nil), c1...)
	kn, _ := kernel(name)
	kn.Sgemm(tr(ta), tr(tb), m, n, k, 0.7, a, lda, b, ldb, 0.3, c1, ldc)
	NaiveGemm(ta, tb, m, n, k, 0.7, a, lda, b, ldb, 0.3, c2, ldc)
	for i := range c1 {
		if d := c1[i] - c2[i]; d > 1e-4 || d < -1e-4 {
			t.Fatalf("%s sgemm(%v,%v,%d,%d,%d): element %d = %v, naive %v", name, ta, tb, m, n, k, i, c1[i], c2[i])
		}
	}
}

func randSlice(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}
