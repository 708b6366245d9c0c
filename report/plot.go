package report

import (
	"fmt"
	"image/color"
	"math"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// PlotMatrixSparsity draws the sparsity of every target matrix (in
// canonical order) as bars, one colour per matrix kind, with the overall
// sparsity as a reference line.
func PlotMatrixSparsity(r *Report, title, path string) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "decoder layer (7 matrices each: q k v o gate up down)"
	p.Y.Label.Text = "sparsity"
	p.Y.Min, p.Y.Max = 0, 1
	kinds := map[string]plotter.XYs{}
	var order []string
	for i, m := range r.Matrices {
		kind := m.Name[lastDot(m.Name[:len(m.Name)-len(".weight")])+1 : len(m.Name)-len(".weight")]
		if _, ok := kinds[kind]; !ok {
			order = append(order, kind)
		}
		kinds[kind] = append(kinds[kind], plotter.XY{X: float64(i)/7 + 0.5/7, Y: m.Sparsity})
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

func lastDot(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '.' {
			return i
		}
	}
	return -1
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
	p.Y.Tick.Marker = plot.LogTicks{}
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
			}
		}
		l, sc, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		l.Color, sc.Color, sc.Shape = plotutil.Color(i), plotutil.Color(i), plotutil.Shape(i)
		p.Add(l, sc)
		p.Legend.Add(s.Name, l, sc)
	}
	if dense > 0 {
		ref := plotter.NewFunction(func(float64) float64 { return dense })
		ref.Color = color.Gray{Y: 120}
		ref.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
		p.Add(ref)
		p.Legend.Add(fmt.Sprintf("dense %.2f", dense), ref)
	}
	p.Legend.Top, p.Legend.Left = true, true
	return p.Save(7*vg.Inch, 4.5*vg.Inch, path)
}
