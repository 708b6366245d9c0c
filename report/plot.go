package report

import (
	"fmt"
	"image/color"
	"math"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/unipruning/unipruning/model"
)

// PlotMatrixSparsity draws the sparsity of every target matrix (in
// canonical order) as bars, one colour per matrix kind, with the overall
// sparsity as a reference line.
func PlotMatrixSparsity(r *Report, title, path string) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "decoder layer (7 matrices each: q k v o gate up down)"
	p.Y.Label.Text = "sparsity"
	p.Y.Min, p.Y.Max = 0, 1.6 // headroom for the legend
	per := int(model.NumMatrices)
	layers := len(r.Matrices) / per
	var ticks []plot.Tick
	for l := 0; l <= layers; l++ {
		ticks = append(ticks, plot.Tick{Value: float64(l), Label: strconv.Itoa(l)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	kinds := map[string]plotter.XYs{}
	var order []string
	for i, m := range r.Matrices {
		base := strings.TrimSuffix(m.Name, ".weight")
		kind := base[strings.LastIndexByte(base, '.')+1:]
		if _, ok := kinds[kind]; !ok {
			order = append(order, kind)
		}
		kinds[kind] = append(kinds[kind], plotter.XY{X: (float64(i) + 0.5) / float64(per), Y: m.Sparsity})
	}
	for i, k := range order {
		s, err := plotter.NewScatter(kinds[k])
		if err != nil {
			return err
		}
		s.GlyphStyle.Color = plotutil.Color(i)
		s.GlyphStyle.Shape = plotutil.Shape(i)
		s.GlyphStyle.Radius = vg.Points(3)
		p.Add(s)
		p.Legend.Add(k, s)
	}
	ref := plotter.NewFunction(func(float64) float64 { return r.Total })
	ref.Color = color.Gray{Y: 120}
	ref.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
	p.Add(ref)
	p.Legend.Add(fmt.Sprintf("overall %.2f", r.Total), ref)
	p.Legend.Top = true
	return p.Save(8*vg.Inch, 4*vg.Inch, path)
}

// Series is one method's perplexity at several unstructured sparsities.
type Series struct {
	Name   string
	Points map[float64]float64 // sparsity → ppl
}

// PlotPPLvsSparsity draws perplexity (log scale) against sparsity, one line
// per method, with the dense model's perplexity as a reference.
func PlotPPLvsSparsity(series []Series, dense float64, title, path string) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "sparsity"
	p.Y.Label.Text = "perplexity (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = logTicks{}
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, s := range series {
		var xs []float64
		for x := range s.Points {
			xs = append(xs, x)
		}
		sort.Float64s(xs)
		pts := plotter.XYs{}
		for _, x := range xs {
			if v := s.Points[x]; v > 0 && !math.IsInf(v, 0) {
				pts = append(pts, plotter.XY{X: x, Y: v})
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
		l, sc, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		// Colours repeat after 7; dashes tell the second round apart.
		l.Color, sc.Color, sc.Shape = plotutil.Color(i), plotutil.Color(i), plotutil.Shape(i)
		l.Dashes = plotutil.Dashes(i / 7)
		p.Add(l, sc)
		p.Legend.Add(s.Name, l, sc)
	}
	if dense > 0 {
		lo = math.Min(lo, dense)
		ref := plotter.NewFunction(func(float64) float64 { return dense })
		ref.Color = color.Gray{Y: 120}
		ref.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
		p.Add(ref)
		p.Legend.Add(fmt.Sprintf("dense %.2f", dense), ref)
	}
	if lo < hi {
		p.Y.Min, p.Y.Max = lo/1.2, hi*1.2
	}
	p.Legend.Top, p.Legend.Left = true, true
	return p.Save(7*vg.Inch, 4.5*vg.Inch, path)
}

// logTicks labels 1, 2, 5 × powers of ten (gonum's LogTicks labels only
// the powers, which leaves a narrow range unlabelled).
type logTicks struct{}

func (logTicks) Ticks(min, max float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Floor(math.Log10(min)); e <= math.Ceil(math.Log10(max)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v >= min && v <= max {
				ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
			}
		}
	}
	return ts
}
