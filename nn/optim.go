package nn

import "math"

// AdamConfig holds AdamW's hyper-parameters (torch.optim.AdamW semantics).
type AdamConfig struct {
	Beta1, Beta2, Eps, WeightDecay float64
}

// SearchAdam is the optimizer of the UniPruning search stage (DESIGN §2.3).
var SearchAdam = AdamConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-10, WeightDecay: 0}

// AdamW applies one AdamW step (step counts from 1) to w with gradient g,
// updating the moments m and v in place, exactly as torch.optim.AdamW's
// single-tensor path: decoupled decay w ← w·(1−lr·wd), moments, bias
// corrections, w ← w − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + eps). Each element is
// computed in float64 and stored in T.
func AdamW[T Float](w, g, m, v []T, lr float64, step int, c AdamConfig) {
	AdamWClipped(w, g, m, v, lr, step, c, 1)
}

// AdamWClipped is Scale(g, clip) followed by AdamW, fused into one pass
// that leaves g as it was: each element of g is scaled and rounded to T
// exactly as Scale stores it, then used at once. It gives bitwise the
// weights and moments of the two calls (with clip = 1 the rounding is
// exact: AdamW itself).
func AdamWClipped[T Float](w, g, m, v []T, lr float64, step int, c AdamConfig, clip float64) {
	bc1 := 1 - math.Pow(c.Beta1, float64(step))
	bc2sqrt := math.Sqrt(1 - math.Pow(c.Beta2, float64(step)))
	stepSize := lr / bc1
	decay := 1 - lr*c.WeightDecay
	w, m, v = w[:len(g)], m[:len(g)], v[:len(g)]
	for i, gi := range g {
		gv := float64(T(float64(gi) * clip))
		mi := T(c.Beta1*float64(m[i]) + (1-c.Beta1)*gv)
		vi := T(c.Beta2*float64(v[i]) + (1-c.Beta2)*gv*gv)
		m[i], v[i] = mi, vi
		denom := math.Sqrt(float64(vi))/bc2sqrt + c.Eps
		wi := float64(w[i])
		if c.WeightDecay != 0 {
			wi *= decay
		}
		w[i] = T(wi - stepSize*float64(mi)/denom)
	}
}

// SumSquares returns Σ g² in float64; gradient norms across matrices (and
// shards) are sums of these taken in a fixed order.
func SumSquares[T Float](g []T) float64 {
	var s float64
	for _, x := range g {
		s += float64(x) * float64(x)
	}
	return s
}

// ClipCoef is torch.nn.utils.clip_grad_norm_'s factor for a total norm:
// min(1, maxNorm/(norm+1e-6)).
func ClipCoef(norm, maxNorm float64) float64 {
	return math.Min(1, maxNorm/(norm+1e-6))
}

// Scale multiplies g by f (skipped when f is exactly 1, as torch's
// clamped coefficient of 1 leaves values unchanged).
func Scale[T Float](g []T, f float64) {
	if f == 1 {
		return
	}
	for i := range g {
		g[i] = T(float64(g[i]) * f)
	}
}

// LinearSchedule is linear warm-up to Peak over Warmup steps, then linear
// decay to 0 at Total (transformers' get_linear_schedule_with_warmup).
type LinearSchedule struct {
	Peak          float64
	Warmup, Total int
}

// WarmupFor returns the schedule with the first 10% of steps as warm-up.
func WarmupFor(peak float64, total int) LinearSchedule {
	return LinearSchedule{Peak: peak, Warmup: total / 10, Total: total}
}

// LR is the learning rate of step k (0-based).
func (s LinearSchedule) LR(k int) float64 {
	if k < s.Warmup {
		return s.Peak * float64(k) / float64(max(1, s.Warmup))
	}
	return s.Peak * math.Max(0, float64(s.Total-k)/float64(max(1, s.Total-s.Warmup)))
}
