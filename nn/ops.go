package nn

import "math"

// rmsNorm writes y = x / rms(x) · g for each of the n rows of x (width d)
// and stores 1/rms per row in inv (float64: the sum of squares is
// accumulated in float64, which keeps long rows accurate).
func rmsNorm[T Float](y, x, g []T, inv []float64, n, d int, eps float64) {
	for r := 0; r < n; r++ {
		row := x[r*d : (r+1)*d]
		var ss float64
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		iv := 1 / math.Sqrt(ss/float64(d)+eps)
		inv[r] = iv
		out := y[r*d : (r+1)*d]
		for i, v := range row {
			out[i] = T(float64(v)*iv) * g[i]
		}
	}
}

// rmsNormBackward adds to dx the gradient through y = x·inv·g and, when dg
// is non-nil, accumulates the gradient of g.
func rmsNormBackward[T Float](dx, dy, x, g []T, dg []T, inv []float64, n, d int) {
	for r := 0; r < n; r++ {
		xr, dyr, dxr := x[r*d:(r+1)*d], dy[r*d:(r+1)*d], dx[r*d:(r+1)*d]
		iv := inv[r]
		var dot float64 // Σ dy·g·x
		for i := range xr {
			dot += float64(dyr[i]) * float64(g[i]) * float64(xr[i])
		}
		c := dot * iv * iv * iv / float64(d)
		for i := range xr {
			dxr[i] += T(float64(dyr[i])*float64(g[i])*iv - float64(xr[i])*c)
		}
		if dg != nil {
			for i := range xr {
				dg[i] += T(float64(dyr[i]) * float64(xr[i]) * iv)
			}
		}
	}
}

// Rope holds cos/sin tables for positions [0, maxPos) in the model's layout.
type Rope struct {
	half        int
	interleaved bool
	cos, sin    []float64 // maxPos × half
}

// NewRope precomputes the rotation tables (float64, so both element types
// see the same angles).
func NewRope(invFreq []float64, maxPos int, interleaved bool) *Rope {
	h := len(invFreq)
	r := &Rope{half: h, interleaved: interleaved, cos: make([]float64, maxPos*h), sin: make([]float64, maxPos*h)}
	for p := 0; p < maxPos; p++ {
		for i, f := range invFreq {
			a := float64(p) * f
			r.cos[p*h+i], r.sin[p*h+i] = math.Cos(a), math.Sin(a)
		}
	}
	return r
}

// MaxPos is the number of positions the tables cover.
func (r *Rope) MaxPos() int { return len(r.cos) / r.half }

// ropeApply rotates every head (width 2·half) of the n rows of x (width
// w); row r has position r mod t. sign = -1 applies the inverse rotation,
// which is the backward pass of the rotation.
func ropeApply[T Float](r *Rope, x []T, n, w, t int, sign float64) {
	for r0 := 0; r0 < n; r0 += t { // each window restarts at position 0
		ropeAt(r, x[r0*w:], min(t, n-r0), w, 0, sign)
	}
}

// ropeAt rotates the heads of n rows of x (width w) at positions p0,
// p0+1, … (a chunk of a window); sign as for ropeApply.
func ropeAt[T Float](r *Rope, x []T, n, w, p0 int, sign float64) {
	hd := 2 * r.half
	for row := 0; row < n; row++ {
		p := p0 + row
		cs, sn := r.cos[p*r.half:(p+1)*r.half], r.sin[p*r.half:(p+1)*r.half]
		for h := 0; h+hd <= w; h += hd {
			head := x[row*w+h : row*w+h+hd]
			for i := 0; i < r.half; i++ {
				a, b := r.pair(i)
				x0, x1 := float64(head[a]), float64(head[b])
				c, s := cs[i], sign*sn[i]
				head[a] = T(x0*c - x1*s)
				head[b] = T(x1*c + x0*s)
			}
		}
	}
}

// pair gives the two coordinates rotated together by frequency i.
func (r *Rope) pair(i int) (int, int) {
	if r.interleaved {
		return 2 * i, 2*i + 1
	}
	return i, i + r.half
}

func silu(x float64) float64 { return x / (1 + math.Exp(-x)) }

// swiglu computes m = silu(g)·u elementwise.
func swiglu[T Float](m, g, u []T) {
	for i := range m {
		m[i] = T(silu(float64(g[i])) * float64(u[i]))
	}
}

// swigluBackward turns dm into dg and du (overwriting them).
func swigluBackward[T Float](dg, du, dm, g, u []T) {
	for i := range dm {
		gv := float64(g[i])
		sig := 1 / (1 + math.Exp(-gv))
		s := gv * sig
		du[i] = T(float64(dm[i]) * s)
		dg[i] = T(float64(dm[i]) * float64(u[i]) * sig * (1 + gv*(1-sig)))
	}
}

// addBias adds b to each of the n rows of y.
func addBias[T Float](y, b []T, n int) {
	w := len(b)
	for r := 0; r < n; r++ {
		row := y[r*w : (r+1)*w]
		for i := range row {
			row[i] += b[i]
		}
	}
}

// sumRows accumulates the column sums of the n rows of dy into db.
func sumRows[T Float](db, dy []T, n int) {
	w := len(db)
	for r := 0; r < n; r++ {
		for i, v := range dy[r*w : (r+1)*w] {
			db[i] += v
		}
	}
}

// linear computes y = x·Wᵀ (+ b) for n rows.
func linear[T Float](y, x []T, l *Linear[T], n int) {
	Gemm(false, true, n, l.Out, l.In, 1, x, l.In, l.W, l.In, 0, y, l.Out)
	if l.B != nil {
		addBias(y, l.B, n)
	}
}

// linearBackward accumulates dx += dy·W (when dx != nil) and dW += dyᵀ·x,
// db += Σ dy (when the gradient slices are non-nil).
func linearBackward[T Float](dx, dy, x []T, l *Linear[T], g *Linear[T], n int) {
	if dx != nil {
		Gemm(false, false, n, l.In, l.Out, 1, dy, l.Out, l.W, l.In, 1, dx, l.In)
	}
	if g != nil && g.W != nil {
		Gemm(true, false, l.Out, l.In, n, 1, dy, l.Out, x, l.In, 1, g.W, l.In)
	}
	if g != nil && g.B != nil {
		sumRows(g.B, dy, n)
	}
}
