package eval

import (
	"fmt"
	"math"

	"github.com/unipruning/unipruning/nn"
)

// NLL sums are reported with the count of predicted tokens so that callers
// can merge results; perplexity is exp(sum/count).
type NLL struct {
	Sum   float64 `json:"nll_sum"`
	Count int     `json:"predicted"`
}

// PPL is exp of the mean negative log-likelihood.
func (n NLL) PPL() float64 { return math.Exp(n.Sum / float64(n.Count)) }

// Perplexity scores every window independently (position i predicts token
// i+1 of the same window) with a whole-model stage, batch windows at a
// time. progress, if set, is called after each batch.
func Perplexity(st *nn.Stage[float32], windows [][]int32, batch int, progress func(done, total int)) (NLL, error) {
	var res NLL
	if len(windows) == 0 {
		return res, fmt.Errorf("no windows to score")
	}
	t := len(windows[0])
	batch = max(1, batch)
	buf := make([]int32, 0, batch*t)
	for i := 0; i < len(windows); i += batch {
		j := min(len(windows), i+batch)
		buf = buf[:0]
		for _, w := range windows[i:j] {
			if len(w) != t {
				return res, fmt.Errorf("windows have different lengths (%d and %d)", t, len(w))
			}
			buf = append(buf, w...)
		}
		h, err := st.Forward(buf, nil, j-i, t, false)
		if err != nil {
			return res, err
		}
		sum, n, _, err := st.HeadLoss(h, nn.Targets(buf, j-i, t), false)
		if err != nil {
			return res, err
		}
		res.Sum += sum
		res.Count += n
		if progress != nil {
			progress(j, len(windows))
		}
	}
	return res, nil
}

// BatchFor picks how many windows of t tokens to score at once: about 4096
// tokens per batch keeps matrix products efficient and memory modest.
func BatchFor(t int) int { return max(1, 4096/t) }
