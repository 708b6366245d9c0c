package tasks

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"time"
)

// HarnessCommit is the lm-evaluation-harness revision these definitions
// were checked against.
const HarnessCommit = "4e7e0d47f33bc71070c1d38394bafbb52b117163"

// ItemResult is one document's outcome.
type ItemResult struct {
	Line     int       `json:"line"`
	LogLiks  []float64 `json:"logliks"`
	Greedy   []bool    `json:"is_greedy"`
	Gold     int       `json:"gold"`
	Pred     int       `json:"pred"`      // argmax of LogLiks (acc)
	PredNorm int       `json:"pred_norm"` // argmax of LogLiks/len(choice) (acc_norm)
}

// TaskResult is one task's metrics, as the harness's results table has them.
type TaskResult struct {
	Name          string       `json:"name"`
	N             int          `json:"n"`
	Available     int          `json:"available"` // records in the data file
	Acc           float64      `json:"acc"`
	AccStderr     *float64     `json:"acc_stderr,omitempty"` // absent when n < 2
	AccNorm       *float64     `json:"acc_norm,omitempty"`   // only where the harness reports it
	AccNormStderr *float64     `json:"acc_norm_stderr,omitempty"`
	Perplexity    *float64     `json:"perplexity,omitempty"` // loglikelihood tasks
	TruncatedDocs int          `json:"truncated_docs"`       // documents left-truncated to max_length
	Skipped       int          `json:"skipped_docs"`         // documents dropped: continuation longer than the context
	Split         string       `json:"split"`
	HarnessTask   string       `json:"harness_task"`
	File          string       `json:"file"`
	SHA256        string       `json:"sha256"`
	Seconds       float64      `json:"seconds"`
	Note          string       `json:"note,omitempty"`
	Items         []ItemResult `json:"-"`
}

// Report is the zero-shot table of one model.
type Report struct {
	Tasks []TaskResult `json:"tasks"`
	// MeanAcc averages acc (never acc_norm) over MeanOver, every task run:
	// the pruning papers' zero-shot tables (Wanda, RIA, UniPruning) list and
	// average acc.
	MeanAcc    float64  `json:"mean_acc"`
	MeanMetric string   `json:"mean_metric"`
	MeanOver   []string `json:"mean_over"`
	// PaperMean is the mean acc over PaperTasks, present when all seven ran.
	PaperMean *float64 `json:"mean_acc_paper7,omitempty"`
	Limit     int      `json:"limit,omitempty"`
	MaxLength int      `json:"max_length"`
	BOS       bool     `json:"bos"`
	Harness   string   `json:"harness_commit"`
	Seconds   float64  `json:"seconds"`
	Notes     []string `json:"notes,omitempty"`
}

// EvalOptions select what Evaluate scores.
type EvalOptions struct {
	Limit int // > 0: only the first Limit documents of each task
	// SkipTooLong drops documents with a continuation longer than the
	// model's context, which the harness cannot score (it asserts and
	// stops); without it such a document is an error. Dropped documents
	// are listed in the task's note and not counted in n.
	SkipTooLong bool
}

// loadedTask is a task with its documents encoded, all done before any
// scoring so that a missing file, a malformed record or an unscorable
// document fails at once rather than after hours of model time.
type loadedTask struct {
	*Task
	docs      []Doc
	nreq      []int      // requests of each document
	reqs      []prepared // the documents' requests, in order
	available int        // documents in the file
	limited   int        // documents considered (after --limit)
	skipped   []int      // lines of documents dropped as too long
	sha       string
}

// Evaluate runs the tasks with data from dir. progress gets requests done
// and their total over all tasks.
func Evaluate(s *Scorer, ts []*Task, dir string, o EvalOptions, progress func(done, total int)) (*Report, error) {
	start := time.Now()
	var lts []*loadedTask
	total := 0
	for _, t := range ts {
		lt, err := loadTask(s, t, dir, o)
		if err != nil {
			return nil, err
		}
		total += len(lt.reqs)
		lts = append(lts, lt)
	}
	rep := &Report{MeanMetric: "acc", Limit: o.Limit, MaxLength: s.MaxLength(), BOS: s.BOS(), Harness: HarnessCommit}
	done := 0
	for _, lt := range lts {
		tr, err := runTask(s, lt, func(d, _ int) {
			if progress != nil {
				progress(done+d, total)
			}
		})
		if err != nil {
			return nil, err
		}
		done += len(lt.reqs)
		rep.add(tr, lt.Note)
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

func loadTask(s *Scorer, t *Task, dir string, o EvalOptions) (*loadedTask, error) {
	raw, err := os.ReadFile(t.Path(dir))
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", t.Name, err)
	}
	docs, err := t.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", t.Name, err)
	}
	sum := sha256.Sum256(raw)
	lt := &loadedTask{Task: t, available: len(docs), sha: hex.EncodeToString(sum[:])}
	if o.Limit > 0 && o.Limit < len(docs) {
		docs = docs[:o.Limit]
	}
	lt.limited = len(docs)
	for _, d := range docs {
		if err := lt.encode(s, d, o.SkipTooLong); err != nil {
			return nil, err
		}
	}
	if len(lt.docs) == 0 {
		return nil, fmt.Errorf("task %s: no document fits the model's context of %d tokens", t.Name, s.MaxLength())
	}
	return lt, nil
}

// encode prepares d's requests, or drops d when a continuation is too
// long and skip is set.
func (lt *loadedTask) encode(s *Scorer, d Doc, skip bool) error {
	var ps []prepared
	for _, r := range d.Requests(lt.Kind) {
		p, err := s.prepare(len(lt.reqs)+len(ps), r)
		if errors.Is(err, ErrTooLong) && skip {
			lt.skipped = append(lt.skipped, d.Line)
			return nil
		}
		if err != nil {
			hint := ""
			if errors.Is(err, ErrTooLong) {
				hint = " (the harness stops here too; --tasks-skip-too-long drops such items and reports them)"
			}
			return fmt.Errorf("task %s: %s:%d: %w%s", lt.Name, lt.File, d.Line, err, hint)
		}
		ps = append(ps, p)
	}
	lt.docs = append(lt.docs, d)
	lt.nreq = append(lt.nreq, len(ps))
	lt.reqs = append(lt.reqs, ps...)
	return nil
}

// runTask scores every request of the task in one run (so batches of
// equal length span documents) and computes the metrics.
func runTask(s *Scorer, lt *loadedTask, progress func(done, total int)) (TaskResult, error) {
	start := time.Now()
	res, err := s.run(lt.reqs, progress)
	if err != nil {
		return TaskResult{}, fmt.Errorf("task %s: %w", lt.Name, err)
	}
	tr := TaskResult{Name: lt.Name, N: len(lt.docs), Available: lt.available, Skipped: len(lt.skipped),
		Split: lt.Split, HarnessTask: lt.Harness, File: lt.File, SHA256: lt.sha}
	k := 0
	for i, d := range lt.docs {
		n := lt.nreq[i]
		item, trunc := scoreDoc(d, res[k:k+n])
		k += n
		tr.Items = append(tr.Items, item)
		if trunc {
			tr.TruncatedDocs++
		}
	}
	tr.metrics(lt.Kind, lt.AccNorm)
	tr.Note = noteFor(lt, tr.TruncatedDocs, s.MaxLength())
	tr.Seconds = time.Since(start).Seconds()
	return tr, nil
}

// scoreDoc applies ConfigurableTask.process_results for multiple_choice:
// pred = argmax(lls), pred_norm = argmax(lls / len(choice)) with len in
// characters of doc_to_choice's strings (np.argmax: first maximum wins).
func scoreDoc(d Doc, rs []Result) (ItemResult, bool) {
	it := ItemResult{Line: d.Line, Gold: d.Gold}
	trunc := false
	for _, r := range rs {
		it.LogLiks = append(it.LogLiks, r.LogLik)
		it.Greedy = append(it.Greedy, r.Greedy)
		trunc = trunc || r.Truncated > 0
	}
	norm := make([]float64, len(rs))
	for i, ll := range it.LogLiks {
		norm[i] = ll / float64(pyLen(d.Choices[i]))
	}
	it.Pred, it.PredNorm = argmax(it.LogLiks), argmax(norm)
	return it, trunc
}

func argmax(v []float64) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// metrics fills acc (and acc_norm / perplexity) with the harness's
// standard error of the mean, mean_stderr = sample_stddev / sqrt(n).
func (tr *TaskResult) metrics(k Kind, accNorm bool) {
	acc, norm := make([]float64, len(tr.Items)), make([]float64, len(tr.Items))
	var llSum float64
	for i, it := range tr.Items {
		if k == Loglikelihood {
			acc[i] = b2f(it.Greedy[0])
			llSum += it.LogLiks[0]
			continue
		}
		acc[i], norm[i] = b2f(it.Pred == it.Gold), b2f(it.PredNorm == it.Gold)
	}
	tr.Acc, tr.AccStderr = meanStderr(acc)
	if accNorm {
		m, se := meanStderr(norm)
		tr.AccNorm, tr.AccNormStderr = &m, se
	}
	if k == Loglikelihood {
		// lm_eval/api/metrics.py perplexity: exp(-mean(loglikelihoods)).
		p := math.Exp(-llSum / float64(len(tr.Items)))
		tr.Perplexity = &p
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// meanStderr is mean and lm_eval/api/metrics.py mean_stderr (sample
// standard deviation with n−1, over sqrt(n)); for 0/1 values that is
// sqrt(p(1−p)/(n−1)). The harness reports no stderr below 2 items.
func meanStderr(x []float64) (float64, *float64) {
	n := float64(len(x))
	var s float64
	for _, v := range x {
		s += v
	}
	m := s / n
	if len(x) < 2 {
		return m, nil
	}
	var ss float64
	for _, v := range x {
		ss += (v - m) * (v - m)
	}
	se := math.Sqrt(ss/(n-1)) / math.Sqrt(n)
	return m, &se
}

func noteFor(lt *loadedTask, truncated, maxLen int) string {
	var parts []string
	if lt.Note != "" {
		parts = append(parts, lt.Note)
	}
	if lt.limited < lt.available {
		parts = append(parts, fmt.Sprintf("limited to the first %d of %d items", lt.limited, lt.available))
	}
	if len(lt.skipped) > 0 {
		parts = append(parts, fmt.Sprintf("skipped, not in n: %d items with an answer longer than the %d-token context, "+
			"which the harness cannot score (lines %s)", len(lt.skipped), maxLen, lineList(lt.skipped, 10)))
	}
	if truncated > 0 {
		parts = append(parts, fmt.Sprintf("left-truncated to the last %d tokens, as the harness does: %d of %d items", maxLen, truncated, len(lt.docs)))
	}
	return strings.Join(parts, "; ")
}

// lineList prints at most max line numbers.
func lineList(lines []int, max int) string {
	var s []string
	for i, l := range lines {
		if i == max {
			s = append(s, fmt.Sprintf("… %d more", len(lines)-max))
			break
		}
		s = append(s, fmt.Sprint(l))
	}
	return strings.Join(s, ", ")
}

// add appends a task and updates the means; the task's data caveat
// (e.g. HellaSwag's 1,000-item subset) also goes to the report-wide notes.
func (r *Report) add(tr TaskResult, caveat string) {
	r.Tasks = append(r.Tasks, tr)
	r.MeanOver = append(r.MeanOver, tr.Name)
	var s float64
	for _, t := range r.Tasks {
		s += t.Acc
	}
	r.MeanAcc = s / float64(len(r.Tasks))
	r.PaperMean = paperMean(r.Tasks)
	if caveat != "" {
		r.Notes = append(r.Notes, tr.Name+": "+caveat)
	}
}

func paperMean(ts []TaskResult) *float64 {
	var s float64
	for _, name := range PaperTasks {
		found := false
		for _, t := range ts {
			if t.Name == name {
				s, found = s+t.Acc, true
			}
		}
		if !found {
			return nil
		}
	}
	m := s / float64(len(PaperTasks))
	return &m
}
