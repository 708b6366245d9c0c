package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/consensus"
	"github.com/unipruning/unipruning/coordinator"
	"github.com/unipruning/unipruning/internal/datadir"
	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/report"
	"github.com/unipruning/unipruning/shard"
	"github.com/unipruning/unipruning/shardrpc"
	"github.com/unipruning/unipruning/transport"
)

type runFlags struct {
	search  searchFlags
	extract extractFlags
	inproc  bool
	lrSet   bool // --lr given explicitly
}

func runCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Search + extract + evaluate in one go, in one process (embedded NATS, single-node Raft)",
		Long: `Runs the whole UniPruning pipeline on one machine with the same code as a cluster: an
embedded NATS server, a single-node Raft coordinator and --shards shard servers in this
process. The search writes its Γ store to <out>/search; every --sparsity and --pattern
target is extracted to <out>/pruned/<target> and evaluated; a summary table is printed.

Without --model it uses the bundled defaults from ../shared/data: the stories260K model,
TinyStories train text for calibration (lines, seqlen 256), the held-out validation text
for perplexity.

The search's learning rate is --lr auto unless --lr is given (mode frozen has none): short
probe searches over 1e-4 … 3e-2 on shortened calibration windows (together no more tokens
than the search), each scored by the held-out calibration loss of the original model under
its masks at the requested targets; the probe table goes to <out>/search/lr-auto.json and
every report.json.`,
		Example: `  unipruning run --out out/demo
  unipruning run --model llama-2-7b-hf --calib c4-train.jsonl --eval-dataset wikitext2 \
      --eval-text wiki.test.raw --shards 2 --sparsity 0.5,0.6 --pattern 2:4 --out out/llama7b`,
		RunE: func(cmd *cobra.Command, args []string) error {
			f.lrSet = cmd.Flags().Changed("lr")
			f.search.changed = cmd.Flags().Changed
			_, err := runAll(cmd.Context(), &f)
			return err
		},
	}
	f.search.register(cmd)
	f.extract.register(cmd)
	fl := cmd.Flags()
	fl.Lookup("sparsity").DefValue = "0.5,0.6,0.7,0.8"
	f.extract.sparsities = "0.5,0.6,0.7,0.8"
	fl.Lookup("pattern").DefValue = "2:4"
	f.extract.patterns = "2:4"
	fl.Lookup("model").Usage = "model: HF directory or llama2.c .bin file (default: the bundled stories260K, with its TinyStories calibration and evaluation texts)"
	fl.Lookup("calib").Usage = "calibration text: C4-style .jsonl (--calib-format c4) or a text file (lines) (default with the bundled model: TinyStories train head)"
	f.search.lrAuto = true
	fl.Lookup("lr").DefValue = "auto"
	fl.Lookup("json").Usage = `print one JSON object on stdout: {"out", "search_seconds", "extract_seconds", "reports": {target: report.json}}`
	fl.Lookup("out").Usage = "output directory: <out>/search (Γ store), <out>/pruned/<target>, <out>/summary.json"
	fl.BoolVar(&f.inproc, "inproc", false, "drive the shards directly instead of over the embedded NATS/Raft (same results; for comparison)")
	markRequired(cmd, "out")
	return cmd
}

// bundledDefaults fills model, calibration and evaluation from
// ../shared/data when no model was given.
func bundledDefaults(f *runFlags) error {
	s := &f.search.spec
	if s.Model != "" {
		return nil
	}
	dir, err := datadir.Dir()
	if err != nil {
		return fmt.Errorf("no --model given and the bundled data is missing: %w", err)
	}
	s.Model = filepath.Join(dir, "models/stories260K/stories260K.bin")
	if s.Tokenizer == "" {
		s.Tokenizer = filepath.Join(dir, "models/stories260K/tok512.bin")
	}
	if s.CalibPath == "" {
		s.CalibPath = filepath.Join(dir, "text/tinystories/TinyStories-train-head-944K.txt")
		s.CalibFormat = "lines"
	}
	if s.Seqlen == 0 {
		s.Seqlen = 256
	}
	if len(f.extract.evals.texts) == 0 {
		f.extract.evals.datasets = []string{"lines"}
		f.extract.evals.texts = []string{filepath.Join(dir, "text/tinystories/TinyStories-validation-head-794K.txt")}
	}
	logf("using the bundled defaults: %s, calibration %s", s.Model, s.CalibPath)
	return nil
}

func runAll(ctx context.Context, f *runFlags) ([]*report.Report, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := bundledDefaults(f); err != nil {
		return nil, err
	}
	if f.search.out == "" {
		return nil, missingFlag("out", "the output directory")
	}
	targets, err := f.extract.targets()
	if err != nil {
		return nil, err
	}
	if !f.lrSet && f.search.spec.Mode == job.ModeFrozen {
		f.search.lrAuto = false // the default, and frozen has no learning rate
	}
	f.search.lrTargets = targets
	if f.extract.saveCompressed { // refused before the search, not after it
		ck, err := model.Open(f.search.spec.Model, f.search.spec.Tokenizer)
		if err != nil {
			return nil, err
		}
		err = checkCompressible(ck, true)
		ck.Close()
		if err != nil {
			return nil, err
		}
	}
	if err := f.extract.evals.validate(); err != nil {
		return nil, err
	}
	root := f.search.out
	if _, err := os.Stat(root); err == nil && !f.search.force && !f.search.resume {
		return nil, fmt.Errorf("output %s exists (pass --force to replace it)", root)
	}
	if f.search.force {
		if err := os.RemoveAll(root); err != nil {
			return nil, err
		}
	}
	sf := f.search
	sf.out, sf.force, sf.json = filepath.Join(root, "search"), false, false
	start := time.Now()
	if f.inproc {
		_, err = runSearch(ctx, sf)
	} else {
		err = runEmbeddedCluster(ctx, sf)
	}
	if err != nil {
		return nil, err
	}
	searchSecs := time.Since(start).Seconds()
	ef := f.extract
	ef.run, ef.out, ef.force = sf.out, filepath.Join(root, "pruned"), true
	reps, err := runExtract(ef)
	if err != nil {
		return nil, err
	}
	extractSecs := time.Since(start).Seconds() - searchSecs
	if err := writeJSONFile(filepath.Join(root, "summary.json"), reps); err != nil {
		return nil, err
	}
	if f.search.json {
		byName := map[string]*report.Report{}
		for _, r := range reps {
			byName[report.TargetName(r)] = r
		}
		return reps, printJSON(map[string]any{"out": root, "search_seconds": searchSecs, "extract_seconds": extractSecs, "reports": byName})
	}
	printSummary(reps, searchSecs, extractSecs)
	return reps, nil
}

// runEmbeddedCluster runs the search on an embedded NATS server with a
// single-node Raft coordinator and in-process shard servers — the cluster
// code, wired in one process.
func runEmbeddedCluster(ctx context.Context, sf searchFlags) error {
	spec, err := searchSpec(&sf)
	if err != nil {
		return err
	}
	if spec, err = resolveSpec(spec); err != nil {
		return err
	}
	if err := checkInputs(spec); err != nil {
		return err // before any run directory exists
	}
	spec, choice, err := applyLRAuto(ctx, &sf, spec)
	if err != nil {
		return err
	}
	if err := prepareRunDir(&sf); err != nil {
		return err
	}
	if err = writeLRChoice(sf.out, choice); err == nil {
		err = embeddedSearch(ctx, sf, spec)
	}
	removeFailedRun(ctx, sf, err)
	return err
}

// embeddedSearch runs the cluster code in this process on a prepared run
// directory.
func embeddedSearch(ctx context.Context, sf searchFlags, spec job.Spec) error {
	log := newLogger()
	// Loopback only, and a random token: other local users cannot reach
	// the in-process bus.
	token := rand.Text()
	srv, err := transport.StartServer(transport.ServerConfig{Port: -1, Token: token})
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	nf := natsFlags{url: srv.ClientURL(), token: token, cluster: "run", blobs: "fs:" + filepath.Join(sf.out, "checkpoints")}
	conn, subj, blobs, err := nf.dial(ctx, "coordinator", log)
	if err != nil {
		return err
	}
	defer conn.Close()
	node, err := consensus.Open(consensus.Config{NodeID: "c1", BindAddr: "127.0.0.1:0", DataDir: filepath.Join(sf.out, "raft"), Bootstrap: true, Logger: quietLogger()})
	if err != nil {
		return err
	}
	defer node.Shutdown()
	if sf.resume {
		if err := reopenFailed(ctx, node); err != nil {
			return err
		}
	}
	stopShards, err := startShards(ctx, nf, sf.shards, log)
	if err != nil {
		return err
	}
	defer stopShards()
	bar := newProgress(spec.Steps, "search "+spec.Mode)
	jb := &job.Job{ID: "run-" + spec.Hash()[:12], Spec: spec, Shards: sf.shards}
	n := coordinator.NewNode(coordinator.NodeConfig{ID: "c1", Raft: node, Conn: conn, Subj: subj,
		Job: jb, Check: checkJob, Finish: gammaWriter(sf.out, blobs), Log: quietLogger(), OnStep: stepPrinter(bar),
		Linger: time.Millisecond}) // one replica: nothing to wait for
	err = n.Run(ctx)
	bar.Done()
	return err
}

// reopenFailed: --resume of a run whose job failed is the user's retry
// (a failed job is otherwise final in Raft).
func reopenFailed(ctx context.Context, node *consensus.Node) error {
	if err := node.WaitLeader(ctx); err != nil {
		return err
	}
	if err := node.Barrier(ctx); err != nil {
		return err
	}
	st := node.State()
	if st.Status != consensus.StatusFailed || st.Job == nil {
		return nil
	}
	logf("the run's job had failed (%s): %s; --resume retries it", st.FailClass, st.Error)
	cmd, err := consensus.NewRetryJob(consensus.NewID(), st.Job.ID, "--resume")
	if err != nil {
		return err
	}
	_, err = node.Apply(ctx, cmd)
	return err
}

// startShards runs n shard servers in this process, each with its own
// NATS connection, and registers them.
func startShards(ctx context.Context, nf natsFlags, n int, log *slog.Logger) (func(), error) {
	var stops []func()
	stop := func() {
		for _, s := range stops {
			s()
		}
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("s%d", i)
		conn, subj, blobs, err := nf.dial(ctx, "shard-"+id, quietLogger())
		if err != nil {
			stop()
			return nil, err
		}
		srv, err := shardrpc.Serve(ctx, conn, subj, id, shardrpc.ServeOptions{Load: shard.Load, Blobs: blobs, Logger: quietLogger()})
		if err != nil {
			conn.Close()
			stop()
			return nil, err
		}
		stops = append(stops, func() { srv.Close(); conn.Close() })
		go shardrpc.Register(ctx, conn, subj, id, "in-process")
	}
	return stop, nil
}

func printSummary(reps []*report.Report, searchSecs, extractSecs float64) {
	fmt.Printf("\n%-16s %-10s %10s\n", "target", "sparsity", "ppl")
	if len(reps) > 0 {
		for _, e := range reps[0].Evals {
			if e.Model == "dense" {
				fmt.Printf("%-16s %-10s %10.4f\n", "dense", "0", e.PPL)
			}
		}
	}
	for _, r := range reps {
		name := r.Pattern
		if name == "" && r.Sparsity != nil {
			name = fmt.Sprintf("%.2f", *r.Sparsity)
		}
		for _, e := range r.Evals {
			if e.Model == "pruned" {
				fmt.Printf("%-16s %-10.4f %10.4f\n", name, r.Total, e.PPL)
			}
		}
	}
	fmt.Printf("search %.1fs, extract+eval %.1fs\n", searchSecs, extractSecs)
}
