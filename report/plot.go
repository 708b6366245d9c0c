package report

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/unipruning/unipruning/model"
)

// PlotMatrixSparsity draws the sparsity of every target matrix (in
// canonical order) as bars, one colour per matrix kind, with the overall
// sparsity as a reference line.
func PlotMatrixSparsity(r *Report, title, path string) error {
	p, err := matrixSparsityPlot(r, title)
	if err != nil {
		return err
	}
	return saveLegendRight(p, 9*vg.Inch, 4*vg.Inch, path)
}

func matrixSparsityPlot(r *Report, title string) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "decoder layer (7 matrices each: q k v o gate up down)"
	p.Y.Label.Text = "sparsity"
	p.Y.Min, p.Y.Max = 0, 1
	per := int(model.NumMatrices)
	layers := len(r.Matrices) / per
	var ticks []plot.Tick
	for l := 0; l <= layers; l++ {
		ticks = append(ticks, plot.Tick{Value: float64(l), Label: strconv.Itoa(l)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.X.Min, p.X.Max = 0, float64(layers)
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
			return nil, err
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
	return p, nil
}

// saveLegendRight saves p as a PNG with its legend beside the data area
// rather than over it, so the axes need no headroom for it.
func saveLegendRight(p *plot.Plot, w, h vg.Length, path string) error {
	c, err := draw.NewFormattedCanvas(w, h, "png")
	if err != nil {
		return err
	}
	dc := draw.New(c)
	leg := p.Legend
	leg.Top, leg.Left = true, true
	lw := leg.Rectangle(dc).Size().X + 6*vg.Millimeter
	p.Legend = plot.NewLegend() // drawn separately below
	p.Draw(draw.Crop(dc, 0, -lw, 0, 0))
	leg.Draw(draw.Crop(dc, w-lw+2*vg.Millimeter, 0, 0, -vg.Centimeter))
	p.Legend = leg
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Series is one method's perplexity at several unstructured sparsities
// (Points) or N:M patterns (Patterns).
type Series struct {
	Name     string
	Points   map[float64]float64 // sparsity → ppl
	Patterns map[string]float64  // "2:4" → ppl
}

// PlotPPLvsSparsity draws perplexity (log scale) against sparsity, one line
// per method, with the dense model's perplexity as a reference.
func PlotPPLvsSparsity(series []Series, dense float64, title, path string) error {
	p, err := pplPlot(series, dense, title)
	if err != nil {
		return err
	}
	return saveLegendRight(p, 8.5*vg.Inch, 4.5*vg.Inch, path)
}

func pplPlot(series []Series, dense float64, title string) (*plot.Plot, error) {
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
			return nil, err
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
	p.Y.Min, p.Y.Max = logAxis(lo, hi)
	return p, nil
}

// PlotPPLPatterns draws perplexity (log scale) of every series at each N:M
// pattern: one column per pattern, one marker per series, the dense
// model's perplexity as a reference line.
func PlotPPLPatterns(series []Series, dense float64, title, path string) error {
	p, err := patternsPlot(series, dense, title)
	if err != nil {
		return err
	}
	return saveLegendRight(p, 8.5*vg.Inch, 4.5*vg.Inch, path)
}

func patternsPlot(series []Series, dense float64, title string) (*plot.Plot, error) {
	set := map[string]bool{}
	for _, s := range series {
		for pat := range s.Patterns {
			set[pat] = true
		}
	}
	var pats []string
	for pat := range set {
		pats = append(pats, pat)
	}
	sort.Slice(pats, func(i, j int) bool { return patternLess(pats[i], pats[j]) })
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "pattern (keep N of every M inputs)"
	p.Y.Label.Text = "perplexity (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = logTicks{}
	var ticks []plot.Tick
	for i, pat := range pats {
		ticks = append(ticks, plot.Tick{Value: float64(i), Label: pat})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.X.Min, p.X.Max = -0.5, float64(len(pats))-0.5
	lo, hi := math.Inf(1), math.Inf(-1)
	width := 0.6 / float64(max(1, len(series)))
	for i, s := range series {
		pts := plotter.XYs{}
		for j, pat := range pats {
			if v, ok := s.Patterns[pat]; ok && v > 0 && !math.IsInf(v, 0) {
				// Series side by side within a pattern's column.
				pts = append(pts, plotter.XY{X: float64(j) - 0.3 + width*(float64(i)+0.5), Y: v})
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return nil, err
		}
		sc.Color, sc.Shape, sc.Radius = plotutil.Color(i), plotutil.Shape(i), vg.Points(4)
		p.Add(sc)
		p.Legend.Add(s.Name, sc)
	}
	if dense > 0 {
		lo = math.Min(lo, dense)
		ref := plotter.NewFunction(func(float64) float64 { return dense })
		ref.Color = color.Gray{Y: 120}
		ref.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
		p.Add(ref)
		p.Legend.Add(fmt.Sprintf("dense %.2f", dense), ref)
	}
	p.Y.Min, p.Y.Max = logAxis(lo, hi)
	return p, nil
}

// patternLess orders "N:M" patterns by M, then N.
func patternLess(a, b string) bool {
	var na, ma, nb, mb int
	fmt.Sscanf(a, "%d:%d", &na, &ma)
	fmt.Sscanf(b, "%d:%d", &nb, &mb)
	if ma != mb {
		return ma < mb
	}
	return na < nb
}

// logAxis widens [lo, hi] to the 1-2-5 ticks around it, so a tick lies at
// or beyond every point (the top point never sits above the last tick).
func logAxis(lo, hi float64) (float64, float64) {
	if !(lo > 0) || !(hi >= lo) || math.IsInf(hi, 0) {
		return 1, 10
	}
	return tickBelow(lo), tickAbove(hi)
}

// tickAbove is the smallest 1-2-5 tick (logTicks' values) ≥ v > 0.
func tickAbove(v float64) float64 {
	e := math.Floor(math.Log10(v))
	for _, m := range []float64{1, 2, 5} {
		if t := m * math.Pow(10, e); t >= v {
			return t
		}
	}
	return math.Pow(10, e+1)
}

// tickBelow is the largest 1-2-5 tick ≤ v > 0.
func tickBelow(v float64) float64 {
	e := math.Floor(math.Log10(v))
	for _, m := range []float64{5, 2} {
		if t := m * math.Pow(10, e); t <= v {
			return t
		}
	}
	return math.Pow(10, e)
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
