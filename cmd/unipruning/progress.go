package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// logf writes a progress/status line to stderr.
func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

// progress reports the advance of a long task on stderr: a bar on a
// terminal, a plain line every 10% (and at least every 30 s) otherwise.
type progress struct {
	bar      *progressbar.ProgressBar
	total    int
	desc     string
	lastPct  int
	lastTime time.Time
	w        io.Writer
}

func newProgress(total int, desc string) *progress {
	p := &progress{total: total, desc: desc, w: os.Stderr, lastTime: time.Now(), lastPct: -1}
	if term.IsTerminal(int(os.Stderr.Fd())) {
		p.bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription(desc), progressbar.OptionShowCount(),
			progressbar.OptionSetElapsedTime(true), progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
	}
	return p
}

// Set reports that done of total units are finished; extra describes the
// current state (e.g. loss).
func (p *progress) Set(done int, extra string) {
	if p.bar != nil {
		if extra != "" {
			p.bar.Describe(p.desc + " " + extra)
		}
		p.bar.Set(done)
		return
	}
	pct := 100 * done / max(1, p.total)
	if pct/10 != p.lastPct/10 || time.Since(p.lastTime) > 30*time.Second || done == p.total {
		fmt.Fprintf(p.w, "%s %d/%d (%d%%) %s\n", p.desc, done, p.total, pct, extra)
		p.lastPct, p.lastTime = pct, time.Now()
	}
}

// SetTotal changes the amount of work (known only once it starts).
func (p *progress) SetTotal(n int) {
	if n == p.total {
		return
	}
	p.total = n
	if p.bar != nil {
		p.bar.ChangeMax(n)
	}
}

// Done finishes the bar.
func (p *progress) Done() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
