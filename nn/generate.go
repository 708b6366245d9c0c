package nn

import (
	"math"
	"math/rand/v2"
)

// Generate extends prompt by steps tokens: greedy at temperature 0,
// otherwise sampled from softmax(logits/temperature) with rng. It stops
// early at stop (if ≥ 0). The context is the last MaxSeq tokens. Each
// step recomputes the whole context (no KV cache): this is a cheap
// end-to-end check of a model, not a serving path.
func Generate(s *Stage[float32], prompt []int32, steps int, temperature float64, rng *rand.Rand, stop int32, emit func(prev, id int32)) ([]int32, error) {
	ids := append([]int32(nil), prompt...)
	for i := 0; i < steps; i++ {
		ctx := ids
		if len(ctx) > s.W.Cfg.MaxSeq {
			ctx = ctx[len(ctx)-s.W.Cfg.MaxSeq:]
		}
		h, err := s.Forward(ctx, nil, 1, len(ctx), false)
		if err != nil {
			return ids, err
		}
		logits := s.Logits(h, len(ctx)-1)
		next := pick(logits, temperature, rng)
		if emit != nil {
			emit(ids[len(ids)-1], next)
		}
		ids = append(ids, next)
		if next == stop {
			break
		}
	}
	return ids, nil
}

func pick(logits []float32, temperature float64, rng *rand.Rand) int32 {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	if temperature <= 0 {
		return int32(best)
	}
	mx := float64(logits[best])
	p := make([]float64, len(logits))
	var sum float64
	for i, v := range logits {
		p[i] = math.Exp((float64(v) - mx) / temperature)
		sum += p[i]
	}
	u := rng.Float64() * sum
	for i, v := range p {
		if u < v {
			return int32(i)
		}
		u -= v
	}
	return int32(len(p) - 1)
}
