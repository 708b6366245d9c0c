package eval

import (
	"fmt"

	"github.com/unipruning/unipruning/internal/seeded"
)

// Calibration formats.
const (
	CalibC4    = "c4"
	CalibLines = "lines"
)

// CalibWindows draws nsamples calibration windows of seqlen tokens:
//   - c4: from JSONL documents longer than seqlen, the Wanda/SparseGPT
//     sampler (Python random.seed(seed), randint draws);
//   - lines: from the lines document stream (as the lines eval protocol),
//     window starts uniform in [0, tokens−seqlen−1) from the seeded
//     generator of (seed, calibration).
func CalibWindows(format, path string, tok Tokenizer, nsamples, seqlen int, seed uint64) ([][]int32, *Manifest, error) {
	if nsamples <= 0 || seqlen < 2 {
		return nil, nil, fmt.Errorf("calibration needs nsamples ≥ 1 and seqlen ≥ 2 (got %d, %d)", nsamples, seqlen)
	}
	src, err := ReadSource(path)
	if err != nil {
		return nil, nil, fmt.Errorf("calibration text: %w", err)
	}
	s := int(seed)
	m := &Manifest{Dataset: "calib-" + format, Path: path, SHA256: src.SHA256, Seqlen: seqlen, Seed: &s}
	var ws [][]int32
	switch format {
	case CalibC4:
		docs, err := JSONLTexts(src.data)
		if err != nil {
			return nil, nil, fmt.Errorf("calibration %s: %w", path, err)
		}
		if ws, err = SampleDocWindows(docs, tok, nsamples, seqlen, NewPyRandom(seed)); err != nil {
			return nil, nil, fmt.Errorf("calibration %s: %w", path, err)
		}
		m.Tokens = nsamples * seqlen
	case CalibLines:
		stream := LinesStream(tok, src.data)
		m.Tokens = len(stream)
		span := len(stream) - seqlen - 1
		if span <= 0 {
			return nil, nil, fmt.Errorf("calibration text %s has %d tokens: too short for windows of %d", path, len(stream), seqlen)
		}
		r := seeded.New(seed, seeded.Calibration)
		for i := 0; i < nsamples; i++ {
			st := r.IntN(span)
			ws = append(ws, stream[st:st+seqlen])
		}
	default:
		return nil, nil, fmt.Errorf("unknown calibration format %q (want c4 or lines)", format)
	}
	m.Windows = len(ws)
	return ws, m, nil
}
