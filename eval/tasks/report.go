package tasks

import (
	"crypto/sha256"
	"encoding/hex"
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

// loadedTask is a task with its documents, read before any scoring so a
// missing or malformed file fails at once.
type loadedTask struct {
	*Task
	docs      []Doc
	available int
	sha       string
}

// Evaluate runs the tasks with data from dir; limit > 0 keeps the first
// limit documents of each (the report says so). progress gets requests
// done and total over all tasks.
func Evaluate(s *Scorer, ts []*Task, dir string, limit int, progress func(done, total int)) (*Report, error) {
	start := time.Now()
	var lts []loadedTask
	total := 0
	for _, t := range ts {
		lt, err := loadTask(t, dir, limit)
		if err != nil {
			return nil, err
		}
		for _, d := range lt.docs {
			total += len(d.Requests(t.Kind))
		}
		lts = append(lts, lt)
	}
	rep := &Report{MeanMetric: "acc", Limit: limit, MaxLength: s.MaxLength(), BOS: s.BOS(), Harness: HarnessCommit}
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
		done += countRequests(lt)
		rep.add(tr)
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

func loadTask(t *Task, dir string, limit int) (loadedTask, error) {
	path := t.Path(dir)
	raw, err := os.ReadFile(path)
	if err != nil {
		return loadedTask{}, fmt.Errorf("task %s: %w", t.Name, err)
	}
	docs, err := t.Load(dir)
	if err != nil {
		return loadedTask{}, fmt.Errorf("task %s: %w", t.Name, err)
	}
	sum := sha256.Sum256(raw)
	lt := loadedTask{Task: t, docs: docs, available: len(docs), sha: hex.EncodeToString(sum[:])}
	if limit > 0 && limit < len(docs) {
		lt.docs = docs[:limit]
	}
	return lt, nil
}

func countRequests(lt loadedTask) int {
	n := 0
	for _, d := range lt.docs {
		n += len(d.Requests(lt.Kind))
	}
	return n
}

// runTask scores every request of the task in one Score call (so batches
// of equal length span documents) and computes the metrics.
func runTask(s *Scorer, lt loadedTask, progress func(done, total int)) (TaskResult, error) {
	start := time.Now()
	var reqs []Request
	for _, d := range lt.docs {
		reqs = append(reqs, d.Requests(lt.Kind)...)
	}
	res, err := s.Score(reqs, progress)
	if err != nil {
		return TaskResult{}, fmt.Errorf("task %s: %w", lt.Name, err)
	}
	tr := TaskResult{Name: lt.Name, N: len(lt.docs), Available: lt.available, Split: lt.Split,
		HarnessTask: lt.Harness, File: lt.File, SHA256: lt.sha}
	k := 0
	for _, d := range lt.docs {
		n := len(d.Requests(lt.Kind))
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

func noteFor(lt loadedTask, truncated, maxLen int) string {
	var parts []string
	if lt.Note != "" {
		parts = append(parts, lt.Note)
	}
	if len(lt.docs) < lt.available {
		parts = append(parts, fmt.Sprintf("limited to the first %d of %d items", len(lt.docs), lt.available))
	}
	if truncated > 0 {
		parts = append(parts, fmt.Sprintf("%d items longer than %d tokens were left-truncated, as the harness does", truncated, maxLen))
	}
	return strings.Join(parts, "; ")
}

// add appends a task and updates the means and report-wide notes.
func (r *Report) add(tr TaskResult) {
	r.Tasks = append(r.Tasks, tr)
	r.MeanOver = append(r.MeanOver, tr.Name)
	var s float64
	for _, t := range r.Tasks {
		s += t.Acc
	}
	r.MeanAcc = s / float64(len(r.Tasks))
	r.PaperMean = paperMean(r.Tasks)
	if tr.Name == "hellaswag" {
		r.Notes = append(r.Notes, "hellaswag is a 1,000-item subset of the validation split")
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
