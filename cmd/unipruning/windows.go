package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/unipruning/unipruning/eval"
	"github.com/unipruning/unipruning/provenance"
)

// windowRange selects evaluation windows [From, To) of a protocol's
// windows (To = 0: through the last one), so that tuning (sweeps, --limit
// proxies) and tables can use disjoint windows.
type windowRange struct {
	From, To int
	set      bool
	atMost   bool // --limit: To is an upper bound (fewer windows are fine)
}

// parseWindows reads --windows A:B (either side may be empty: ":300" is
// the first 300 windows, "300:" all but them).
func parseWindows(flag, s string) (windowRange, error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return windowRange{}, badFlag(flag, s, "want A:B (windows A … B−1; either side may be empty)")
	}
	r := windowRange{set: true}
	var err error
	if a != "" {
		if r.From, err = strconv.Atoi(a); err != nil || r.From < 0 {
			return windowRange{}, badFlag(flag, s, "start %q is not a non-negative integer", a)
		}
	}
	if b != "" {
		if r.To, err = strconv.Atoi(b); err != nil || r.To <= r.From {
			return windowRange{}, badFlag(flag, s, "end %q is not an integer above the start %d", b, r.From)
		}
	}
	return r, nil
}

// windowFlags resolves --windows, --skip and --limit (first N windows)
// into one range; they exclude each other.
func windowFlags(windows string, skip, limit int) (windowRange, error) {
	given := 0
	for _, g := range []bool{windows != "", skip > 0, limit > 0} {
		if g {
			given++
		}
	}
	switch {
	case skip < 0:
		return windowRange{}, badFlag("skip", skip, "must not be negative")
	case given > 1:
		return windowRange{}, usageError{fmt.Errorf("--windows, --skip and --limit exclude each other")}
	case windows != "":
		return parseWindows("windows", windows)
	case skip > 0:
		return windowRange{From: skip, set: true}, nil
	case limit > 0:
		return windowRange{To: limit, set: true, atMost: true}, nil
	}
	return windowRange{}, nil
}

// apply cuts ws to the range and records it in the manifest; a range
// beyond the protocol's windows is an error, not a silent truncation.
func (r windowRange) apply(ws [][]int32, man *eval.Manifest) ([][]int32, error) {
	if !r.set {
		return ws, nil
	}
	to := r.To
	if to == 0 || (r.atMost && to > len(ws)) {
		to = len(ws)
	}
	if r.From >= len(ws) || to > len(ws) {
		return nil, fmt.Errorf("windows %d:%d asked of %s, which has %d windows of %d tokens", r.From, to, man.Path, len(ws), man.Seqlen)
	}
	man.Range = &provenance.WindowRange{From: r.From, To: to, Of: len(ws)}
	man.Windows = to - r.From
	return ws[r.From:to], nil
}
