package nn

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/unipruning/unipruning/internal/shareddata"
	"github.com/unipruning/unipruning/model"
)

// The goldens come from an independent PyTorch implementation
// (tools/reference/make_goldens.py; see testdata/reference/README.md).
const goldenPath = "../testdata/reference/stories260k_golden.json"

type goldenMatrix struct {
	Idx       []int     `json:"idx"`
	W0        []float64 `json:"w0_at_idx"`
	GradNorm  float64   `json:"grad_norm"`
	GradAtIdx []float64 `json:"grad_at_idx"`
}

type goldenAfter struct {
	Values    []float64 `json:"values_at_idx"`
	Delta     []float64 `json:"delta_at_idx"`
	DeltaNorm float64   `json:"delta_norm"`
}

type goldenTrain struct {
	Step1 struct {
		Loss     float64                 `json:"loss"`
		GradNorm float64                 `json:"grad_norm"`
		Matrices map[string]goldenMatrix `json:"matrices"`
	} `json:"step1"`
	Losses    []float64              `json:"losses"`
	GradNorms []float64              `json:"grad_norms"`
	After     map[string]goldenAfter `json:"after"`
}

type golden struct {
	PromptIDs []int32 `json:"prompt_ids"`
	Logits    struct {
		Positions []int       `json:"positions"`
		Values    [][]float64 `json:"values"`
	} `json:"logits"`
	Train struct {
		Windows [][]int32 `json:"windows"`
	} `json:"train"`
	TrainF64 goldenTrain `json:"train_f64"`
	TrainF32 goldenTrain `json:"train_f32"`
}

func loadGolden(t *testing.T) (*golden, *model.Checkpoint) {
	t.Helper()
	b, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	ck, err := model.Open(shareddata.Path(t, "models/stories260K/stories260K.bin"), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return &g, ck
}

// relErr is |a−b| relative to max(|b|, floor).
func relErr(a, b, floor float64) float64 {
	return math.Abs(a-b) / math.Max(math.Abs(b), floor)
}

func TestGoldenLogits(t *testing.T) {
	g, ck := loadGolden(t)
	got := logitsOf(t, ck, g.PromptIDs)
	var worst float64
	for i, pos := range g.Logits.Positions {
		for j, want := range g.Logits.Values[i] {
			worst = math.Max(worst, relErr(float64(got[pos][j]), want, 1))
		}
	}
	if worst > 1e-5 {
		t.Fatalf("logits differ from the PyTorch reference by %.3g (relative)", worst)
	}
	t.Logf("float32 logits vs float64 PyTorch: max relative difference %.3g", worst)
}

// trainSteps runs the golden's 3 search-stage weight updates.
func trainSteps[T Float](t *testing.T, ck *model.Checkpoint, g *golden, check func(step int, loss, norm float64, s *Stage[T])) *Weights[T] {
	w, err := Load[T](ck, Whole(ck.Config))
	if err != nil {
		t.Fatal(err)
	}
	s := NewStage(w)
	s.EnableGrad(false)
	m, v := map[*Linear[T]][]T{}, map[*Linear[T]][]T{}
	for k, win := range g.Train.Windows {
		s.ZeroGrad()
		h, err := s.Forward(win, nil, 1, len(win), true)
		if err != nil {
			t.Fatal(err)
		}
		sum, n, dh, err := s.HeadLoss(h, Targets(win, 1, len(win)), true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Backward(dh); err != nil {
			t.Fatal(err)
		}
		var sq float64
		for l := range w.Blocks {
			for mi := range w.Blocks[l].Lin {
				sq += SumSquares(s.G.Blocks[l].Lin[mi].W)
			}
		}
		norm := math.Sqrt(sq)
		check(k+1, sum/float64(n), norm, s)
		coef := ClipCoef(norm, 1)
		for l := range w.Blocks {
			for mi := range w.Blocks[l].Lin {
				lin, gr := &w.Blocks[l].Lin[mi], s.G.Blocks[l].Lin[mi].W
				if m[lin] == nil {
					m[lin], v[lin] = make([]T, len(gr)), make([]T, len(gr))
				}
				Scale(gr, coef)
				AdamW(lin.W, gr, m[lin], v[lin], 1e-4, k+1, SearchAdam)
			}
		}
	}
	return w
}

func checkTraining[T Float](t *testing.T, ck *model.Checkpoint, g *golden, ref goldenTrain, tol float64) {
	w0, _ := Load[T](ck, Whole(ck.Config))
	worst := 0.0
	note := func(e float64) { worst = math.Max(worst, e) }
	w := trainSteps(t, ck, g, func(step int, loss, norm float64, s *Stage[T]) {
		note(relErr(loss, ref.Losses[step-1], 1e-12))
		note(relErr(norm, ref.GradNorms[step-1], 1e-12))
		if step != 1 {
			return
		}
		for _, tg := range model.Targets(ck.Config) {
			gm := ref.Step1.Matrices[tg.TensorName()]
			gr := s.G.Blocks[tg.Layer].Lin[tg.Matrix].W
			note(relErr(math.Sqrt(SumSquares(gr)), gm.GradNorm, 1e-12))
			for i, idx := range gm.Idx {
				// Relative to the matrix's RMS gradient, so entries near 0
				// are judged on the scale that matters.
				note(relErr(float64(gr[idx]), gm.GradAtIdx[i], gm.GradNorm/math.Sqrt(float64(len(gr)))))
			}
		}
	})
	for _, tg := range model.Targets(ck.Config) {
		ga := ref.After[tg.TensorName()]
		idx := ref.Step1.Matrices[tg.TensorName()].Idx
		now, was := w.Blocks[tg.Layer].Lin[tg.Matrix].W, w0.Blocks[tg.Layer].Lin[tg.Matrix].W
		var dsq float64
		for i := range now {
			d := float64(now[i]) - float64(was[i])
			dsq += d * d
		}
		note(relErr(math.Sqrt(dsq), ga.DeltaNorm, 1e-12))
		for i, j := range idx {
			note(relErr(float64(now[j]), ga.Values[i], 1e-12))
		}
	}
	if worst > tol {
		t.Fatalf("training differs from the PyTorch reference by %.3g relative (tolerance %g)", worst, tol)
	}
	t.Logf("losses, gradients and weights after 3 AdamW steps: max relative difference %.3g", worst)
}

// TestGoldenTrainingFloat64: loss, gradients and 3 AdamW steps in float64
// against PyTorch float64.
func TestGoldenTrainingFloat64(t *testing.T) {
	g, ck := loadGolden(t)
	checkTraining[float64](t, ck, g, g.TrainF64, 1e-8)
}

// TestGoldenTrainingFloat32: the production engine against PyTorch
// float32 (the bar is 1e-4 relative).
func TestGoldenTrainingFloat32(t *testing.T) {
	g, ck := loadGolden(t)
	checkTraining[float32](t, ck, g, g.TrainF32, 1e-4)
}

// TestFineTuneLowersLoss: a short AdamW fine-tuning of the target matrices
// on calibration windows lowers their mean loss (the engine trains).
func TestFineTuneLowersLoss(t *testing.T) {
	g, ck := loadGolden(t)
	w, err := Load[float32](ck, Whole(ck.Config))
	if err != nil {
		t.Fatal(err)
	}
	s := NewStage(w)
	s.EnableGrad(false)
	wins := g.Train.Windows
	evalLoss := func() float64 {
		var sum float64
		var n int
		for _, win := range wins {
			h, _ := s.Forward(win, nil, 1, len(win), false)
			l, c, _, _ := s.HeadLoss(h, Targets(win, 1, len(win)), false)
			sum, n = sum+l, n+c
		}
		return sum / float64(n)
	}
	before := evalLoss()
	m, v := map[int][]float32{}, map[int][]float32{}
	for step := 1; step <= 30; step++ {
		win := wins[step%len(wins)]
		s.ZeroGrad()
		h, _ := s.Forward(win, nil, 1, len(win), true)
		_, _, dh, _ := s.HeadLoss(h, Targets(win, 1, len(win)), true)
		if _, err := s.Backward(dh); err != nil {
			t.Fatal(err)
		}
		for i, tg := range model.Targets(ck.Config) {
			lin, gr := &w.Blocks[tg.Layer].Lin[tg.Matrix], s.G.Blocks[tg.Layer].Lin[tg.Matrix].W
			if m[i] == nil {
				m[i], v[i] = make([]float32, len(gr)), make([]float32, len(gr))
			}
			AdamW(lin.W, gr, m[i], v[i], 1e-3, step, SearchAdam)
		}
	}
	after := evalLoss()
	if !(after < before-0.05) {
		t.Fatalf("30 AdamW steps did not lower the loss: %.4f → %.4f", before, after)
	}
	t.Logf("mean loss on the 3 windows: %.4f → %.4f after 30 steps", before, after)
}
