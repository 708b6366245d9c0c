//go:build chaos

package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/unipruning/unipruning/job"
	"github.com/unipruning/unipruning/prune/gammastore"

	"github.com/unipruning/unipruning/coordinator"
	"github.com/unipruning/unipruning/internal/shareddata"
)

// ---------------------------------------------------------------------------
// The binary, the repository, the job.

var (
	tmpRoot  string // removed by TestMain
	buildMu  sync.Mutex
	binPath  string
	refMu    sync.Mutex
	refCache = map[string]*reference{}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "unipruning-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	tmpRoot = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// repoRoot is the module root (the tests run in chaos/).
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s has no go.mod: %v", root, err)
	}
	return root
}

// binary builds cmd/unipruning once per test run (pure Go, static: the
// same binary also goes into the container image).
func binary(t testing.TB) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if binPath != "" {
		return binPath
	}
	out := filepath.Join(tmpRoot, "bin", "unipruning")
	start := time.Now()
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/unipruning")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	t.Logf("built %s in %v", out, time.Since(start).Round(time.Millisecond))
	binPath = out
	return out
}

func steps() int {
	if s, err := strconv.Atoi(os.Getenv("CHAOS_STEPS")); err == nil && s > 0 {
		return s
	}
	return 32
}

// dataRel is a shared data file as a path relative to the repository root
// (the processes run there, and the containers mount the data so that the
// same relative path resolves: the spec, and so its hash, is the same).
func dataRel(t testing.TB, rel string) string {
	t.Helper()
	abs := shareddata.Path(t, rel)
	abs, err := filepath.Abs(abs)
	if err != nil {
		t.Fatal(err)
	}
	r, err := filepath.Rel(repoRoot(t), abs)
	if err != nil {
		return abs
	}
	return r
}

// chaosJob is the chaos workload: stories260K, seqlen 64, a checkpoint every 4
// steps, 3 shards.
func chaosJob(t testing.TB, mode string) job.Job {
	t.Helper()
	spec := job.Spec{
		Model:           dataRel(t, "models/stories260K/stories260K.bin"),
		Tokenizer:       dataRel(t, "models/stories260K/tok512.bin"),
		Mode:            mode,
		Metric:          "stochria",
		Kappa:           0.01,
		Lambda:          0.001,
		LR:              1e-4,
		ClipNorm:        1,
		Steps:           steps(),
		Seed:            0,
		CalibPath:       dataRel(t, "text/tinystories/TinyStories-train-head-944K.txt"),
		CalibFormat:     "lines",
		Seqlen:          64,
		CheckpointEvery: 4,
	}
	spec.Defaults()
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	return job.Job{ID: "chaos-" + mode, Spec: spec, Shards: 3}
}

// searchArgs are the `unipruning search` flags of spec: every field.
func searchArgs(s job.Spec) []string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	return []string{
		"--model", s.Model, "--tokenizer", s.Tokenizer, "--mode", s.Mode, "--metric", string(s.Metric),
		"--kappa", f(s.Kappa), "--lambda", f(s.Lambda), "--lr", f(s.LR), "--clip", f(s.ClipNorm),
		"--lambda2", f(s.Lambda2), "--steps", strconv.Itoa(s.Steps), "--seed", strconv.FormatUint(s.Seed, 10),
		"--calib", s.CalibPath, "--calib-format", s.CalibFormat, "--seqlen", strconv.Itoa(s.Seqlen),
		"--checkpoint-every", strconv.Itoa(s.CheckpointEvery),
	}
}

// ---------------------------------------------------------------------------
// Γ stores.

type reference struct {
	dir     string
	man     gammastore.Manifest
	seconds float64
}

// readGamma loads a Γ store (gammastore.Open checks every part file
// against its recorded sha256) and returns its manifest.
func readGamma(t testing.TB, dir string) gammastore.Manifest {
	t.Helper()
	st, err := gammastore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st.Manifest
}

// referenceRun is the one-process search of the same spec (cached per
// mode).
func referenceRun(t testing.TB, j job.Job) *reference {
	t.Helper()
	refMu.Lock()
	defer refMu.Unlock()
	key := j.Spec.Hash()
	if r := refCache[key]; r != nil {
		return r
	}
	dir := filepath.Join(tmpRoot, "reference-"+j.Spec.Mode+"-"+key[:8])
	args := append([]string{"search", "--shards", strconv.Itoa(j.Shards), "--out", dir, "--force"}, searchArgs(j.Spec)...)
	cmd := exec.Command(binary(t), args...)
	cmd.Dir = repoRoot(t)
	start := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("reference search: %v\n%s", err, tail(b, 20))
	}
	r := &reference{dir: dir, man: readGamma(t, dir), seconds: time.Since(start).Seconds()}
	if r.man.SpecHash != key {
		t.Fatalf("the reference run's spec hash %s differs from the job's %s: the search flags do not reproduce the job spec", r.man.SpecHash, key)
	}
	refCache[key] = r
	return r
}

// sameGamma fails the test unless the Γ store in dir equals the reference
// bit for bit (every part file), with the same spec and per-step facts.
func sameGamma(t testing.TB, ref *reference, dir string, checkSpec bool) {
	t.Helper()
	got := readGamma(t, dir)
	if checkSpec && got.SpecHash != ref.man.SpecHash {
		t.Errorf("spec hash %s, reference %s", got.SpecHash, ref.man.SpecHash)
	}
	if len(got.Parts) != len(ref.man.Parts) {
		t.Fatalf("%d Γ parts, reference %d", len(got.Parts), len(ref.man.Parts))
	}
	for i, p := range got.Parts { // both stores' files match their sha256
		r := ref.man.Parts[i]
		if p.File != r.File || p.SHA256 != r.SHA256 {
			t.Errorf("Γ part %d: %s sha256 %s (%d bytes), reference %s sha256 %s (%d bytes)", i, p.File, p.SHA256, p.Bytes, r.File, r.SHA256, r.Bytes)
		}
	}
	if t.Failed() {
		return
	}
	t.Logf("Γ identical to the one-process reference: %d parts, sha256 %s", len(got.Parts), partSums(got))
	// The ledger's per-step facts (lr, loss, gradient norm, τ_k) as
	// replayed after recoveries must match the uninterrupted run as well.
	gs, rs := got.Steps, ref.man.Steps
	if len(gs) != len(rs) {
		t.Errorf("%d step records, reference %d", len(gs), len(rs))
		return
	}
	for i := range gs {
		a, _ := json.Marshal(gs[i])
		b, _ := json.Marshal(rs[i])
		if !bytes.Equal(a, b) {
			t.Errorf("step record %d differs: %s, reference %s", i+1, a, b)
		}
	}
}

func partSums(m gammastore.Manifest) string {
	var s []string
	for _, p := range m.Parts {
		s = append(s, p.SHA256[:12])
	}
	return strings.Join(s, ",")
}

// ---------------------------------------------------------------------------
// Processes.

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// freePorts asks the kernel for n free loopback ports.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// cluster is NATS + 3 coordinators + shards as processes on loopback.
type cluster struct {
	t        *testing.T
	bin      string
	root     string
	dir      string
	logs     string
	out      string
	jobFile  string
	natsPort int
	natsURL  string
	raft     []string // raft addresses of c1..c3
	hb       time.Duration

	mu    sync.Mutex
	procs map[string]*proc
}

func newCluster(t *testing.T, j job.Job) *cluster {
	t.Helper()
	dir := t.TempDir()
	c := &cluster{t: t, bin: binary(t), root: repoRoot(t), dir: dir, logs: filepath.Join(dir, "logs"),
		out: filepath.Join(dir, "out"), jobFile: filepath.Join(dir, "job.json"), hb: 2 * time.Second,
		procs: map[string]*proc{}}
	if err := os.MkdirAll(c.logs, 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(j, "", "  ")
	if err := os.WriteFile(c.jobFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 4)
	c.natsPort, c.natsURL = ports[0], fmt.Sprintf("nats://127.0.0.1:%d", ports[0])
	for _, p := range ports[1:] {
		c.raft = append(c.raft, fmt.Sprintf("127.0.0.1:%d", p))
	}
	t.Cleanup(c.dumpOnFailure) // cleanups run last-in first-out: this one after stopAll
	t.Cleanup(c.stopAll)
	return c
}

// start runs the binary with args as process name, appending to
// logs/<name>.log.
func (c *cluster) start(name string, args ...string) *proc {
	c.t.Helper()
	f, err := os.OpenFile(filepath.Join(c.logs, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	fmt.Fprintf(f, "=== %s start: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := exec.Command(c.bin, args...)
	cmd.Dir = c.root
	cmd.Stdout, cmd.Stderr = f, f
	dieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		f.Close()
		c.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs[name] = p
	c.mu.Unlock()
	return p
}

func (c *cluster) proc(name string) *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[name]
}

// signal sends sig to a running process.
func (c *cluster) signal(name string, sig syscall.Signal) {
	c.t.Helper()
	p := c.proc(name)
	if p == nil || p.exited() {
		c.t.Fatalf("%s is not running", name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("signal %v to %s: %v", sig, name, err)
	}
}

// kill9 kills a process with SIGKILL and reaps it.
func (c *cluster) kill9(name string) time.Time {
	c.t.Helper()
	c.signal(name, syscall.SIGKILL)
	at := time.Now()
	<-c.proc(name).done
	return at
}

// stop ends a process with SIGTERM (SIGKILL after 5 s).
func (c *cluster) stop(name string) {
	p := c.proc(name)
	if p == nil || p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGCONT) // a stopped process cannot act on SIGTERM
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (c *cluster) stopAll() {
	c.mu.Lock()
	var names []string
	for n := range c.procs {
		names = append(names, n)
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Add(1)
		go func() { defer wg.Done(); c.stop(n) }()
	}
	wg.Wait()
}

func (c *cluster) dumpOnFailure() {
	if keep := os.Getenv("CHAOS_KEEP"); keep != "" {
		dst := filepath.Join(keep, strings.ReplaceAll(c.t.Name(), "/", "_"))
		os.MkdirAll(dst, 0o755)
		ents, _ := os.ReadDir(c.logs)
		for _, e := range ents {
			if b, err := os.ReadFile(filepath.Join(c.logs, e.Name())); err == nil {
				os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644)
			}
		}
	}
	if !c.t.Failed() {
		return
	}
	ents, _ := os.ReadDir(c.logs)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(c.logs, e.Name()))
		c.t.Logf("---- %s (last lines)\n%s", e.Name(), tail(b, 25))
	}
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// startNATS starts (or restarts, on the same port and store) the server.
func (c *cluster) startNATS() {
	c.t.Helper()
	p := c.start("nats", "nats", "--insecure", "--port", strconv.Itoa(c.natsPort), "--store", filepath.Join(c.dir, "nats"))
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", c.natsPort), time.Second); err == nil {
			conn.Close()
			return
		}
		if p.exited() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("the NATS server did not come up on port %d", c.natsPort)
}

func (c *cluster) peers() string {
	var s []string
	for i, a := range c.raft {
		s = append(s, fmt.Sprintf("c%d=%s", i+1, a))
	}
	return strings.Join(s, ",")
}

// startCoordinator starts (or restarts, with its Raft directory) replica
// c<i>, i in 1..3.
func (c *cluster) startCoordinator(i int, extra ...string) {
	id := fmt.Sprintf("c%d", i)
	c.start(id, append([]string{"coordinator", "--insecure", "--id", id, "--raft-bind", c.raft[i-1], "--raft-dir", filepath.Join(c.dir, "raft", id),
		"--peers", c.peers(), "--bootstrap", "--job", c.jobFile, "--out", c.out,
		"--nats", c.natsURL, "--cluster", "chaos", "--heartbeat-timeout", c.hb.String()}, extra...)...)
}

func (c *cluster) startShard(id string, extra ...string) {
	c.start(id, append([]string{"shard", "--insecure", "--id", id, "--nats", c.natsURL, "--cluster", "chaos"}, extra...)...)
}

// up starts NATS, 3 coordinators and shards s0..s<n-1>.
func (c *cluster) up(shards int) time.Time {
	c.startNATS()
	for i := 1; i <= 3; i++ {
		c.startCoordinator(i)
	}
	for i := 0; i < shards; i++ {
		c.startShard(fmt.Sprintf("s%d", i))
	}
	return time.Now()
}

// status asks the coordinators (`unipruning status --json`).
func (c *cluster) status(ctx context.Context) (coordinator.Status, error) {
	return clusterStatus(ctx, c.bin, c.natsURL)
}

// clusterStatus asks the chaos job's coordinators for their status via
// `unipruning status` (processes and containers alike).
func clusterStatus(ctx context.Context, bin, natsURL string, extra ...string) (coordinator.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var st coordinator.Status
	b, err := exec.CommandContext(ctx, bin, append([]string{"status", "--nats", natsURL, "--cluster", "chaos", "--json"}, extra...)...).Output()
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// ---------------------------------------------------------------------------
// Logs.

// event is one slog line of a coordinator.
type event struct {
	at      time.Time
	replica string
	msg     string
	line    string
}

var (
	reTime = regexp.MustCompile(`^time=(\S+) `)
	reMsg  = regexp.MustCompile(` msg=("(?:[^"\\]|\\.)*"|\S+)`)
	reStep = regexp.MustCompile(` msg=step .* k=(\d+) `)
	reKV   = func(key string) *regexp.Regexp { return regexp.MustCompile(` ` + key + `=(\S+)`) }
)

// events parses the logs whose names start with prefix ("c" for the
// coordinators), in time order.
func (c *cluster) events(prefix string) []event { return eventsIn(c.logs, prefix) }

// eventsIn parses the logs in dir whose names start with prefix.
func eventsIn(logs, prefix string) []event {
	ents, _ := os.ReadDir(logs)
	var evs []event
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		f, err := os.Open(filepath.Join(logs, e.Name()))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			ev, ok := parseEvent(sc.Text())
			if ok {
				ev.replica = strings.TrimSuffix(e.Name(), ".log")
				evs = append(evs, ev)
			}
		}
		f.Close()
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
	return evs
}

func parseEvent(line string) (event, bool) {
	m := reTime.FindStringSubmatch(line)
	if m == nil {
		return event{}, false
	}
	at, err := time.Parse(time.RFC3339Nano, m[1])
	if err != nil {
		return event{}, false
	}
	msg := ""
	if mm := reMsg.FindStringSubmatch(line); mm != nil {
		msg = strings.Trim(mm[1], `"`)
	}
	return event{at: at, msg: msg, line: line}, true
}

// firstAfter is the first coordinator event whose message starts with msg after t
// (and, when re is set, a line matching it).
func firstAfter(evs []event, t time.Time, msg string, re *regexp.Regexp) (event, bool) {
	for _, e := range evs {
		if e.at.After(t) && strings.HasPrefix(e.msg, msg) && (re == nil || re.MatchString(e.line)) {
			return e, true
		}
	}
	return event{}, false
}

// maxStep is the highest step any coordinator has logged as done.
func (c *cluster) maxStep() int {
	k := 0
	ents, _ := os.ReadDir(c.logs)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "c") {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(c.logs, e.Name()))
		for _, m := range reStep.FindAllSubmatch(b, -1) {
			if v, _ := strconv.Atoi(string(m[1])); v > k {
				k = v
			}
		}
	}
	return k
}

// waitStep waits until step k is done.
func (c *cluster) waitStep(ctx context.Context, k int) int {
	c.t.Helper()
	for {
		if s := c.maxStep(); s >= k {
			return s
		}
		if c.finished() {
			c.t.Fatalf("the job ended before step %d: the fault would come too late (raise CHAOS_STEPS)", k)
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("step %d not reached: %v (at step %d)", k, ctx.Err(), c.maxStep())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

var reDone = regexp.MustCompile(`msg="coordinator done" .*status=done`)

// finished: the Γ store is written and a replica has seen status "done".
func (c *cluster) finished() bool {
	if _, err := os.Stat(filepath.Join(c.out, "gamma.json")); err != nil {
		return false
	}
	ents, _ := os.ReadDir(c.logs)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "c") {
			if b, _ := os.ReadFile(filepath.Join(c.logs, e.Name())); reDone.Match(b) {
				return true
			}
		}
	}
	return false
}

// waitDone waits for the job to finish, then for the coordinators to exit
// (5 s grace: a replica that missed the final commit is stopped, see the
// report in deploy/README.md), and returns the time the Γ store appeared.
func (c *cluster) waitDone(ctx context.Context) time.Time {
	c.t.Helper()
	for !c.finished() {
		for _, n := range []string{"c1", "c2", "c3"} {
			if p := c.proc(n); p != nil && p.exited() && p.err != nil && !isSignal(p.err) {
				c.t.Errorf("coordinator %s exited: %v", n, p.err)
			}
		}
		if st, err := os.Stat(filepath.Join(c.out, "gamma.json")); err == nil && time.Since(st.ModTime()) > 30*time.Second {
			c.t.Fatalf("gamma.json written 30s ago but no replica reports done")
		}
		select {
		case <-ctx.Done():
			st, err := c.status(context.Background())
			c.t.Fatalf("job not done: %v (step %d; status %+v, %v)", ctx.Err(), c.maxStep(), st, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	st, _ := os.Stat(filepath.Join(c.out, "gamma.json"))
	grace := time.Now().Add(5 * time.Second)
	for _, n := range []string{"c1", "c2", "c3"} {
		p := c.proc(n)
		if p == nil {
			continue
		}
		select {
		case <-p.done:
			if p.err != nil && !isSignal(p.err) {
				c.t.Errorf("coordinator %s exited with %v", n, p.err)
			}
		case <-time.After(time.Until(grace)):
		case <-ctx.Done():
		}
		if !p.exited() {
			c.t.Logf("note: %s still running 5s after the job ended (it missed the final commit): stopping it", n)
			c.stop(n)
		}
	}
	return st.ModTime()
}

func isSignal(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return true
		}
	}
	return false
}

// epochs is the highest epoch any coordinator committed (from the logs).
func (c *cluster) maxEpoch() int {
	re := reKV("epoch")
	e := 0
	for _, ev := range c.events("c") {
		if ev.msg == "assignment committed" {
			if m := re.FindStringSubmatch(ev.line); m != nil {
				if v, _ := strconv.Atoi(m[1]); v > e {
					e = v
				}
			}
		}
	}
	return e
}

// recovery reports, from the coordinators' logs, when the fault at t was
// noticed (first event named notice), when the next epoch was committed
// and when its first step was done.
type recovery struct {
	noticed, replanned, firstStep time.Duration
	by                            string
}

func (c *cluster) recovery(t time.Time, notice string) recovery {
	return recoveryIn(c.events("c"), t, notice)
}

func recoveryIn(evs []event, t time.Time, notice string) recovery {
	var r recovery
	r.noticed, r.replanned, r.firstStep = -1, -1, -1
	if e, ok := firstAfter(evs, t, notice, nil); ok {
		r.noticed, r.by = e.at.Sub(t), e.replica
	}
	if e, ok := firstAfter(evs, t, "assignment committed", nil); ok {
		r.replanned = e.at.Sub(t)
		if s, ok := firstAfter(evs, e.at, "step", nil); ok {
			r.firstStep = s.at.Sub(t)
		}
	}
	return r
}

func (r recovery) String() string {
	d := func(x time.Duration) string {
		if x < 0 {
			return "n/a"
		}
		return x.Round(time.Millisecond).String()
	}
	return fmt.Sprintf("noticed after %s (by %s), new epoch committed after %s, first step of the new epoch done after %s",
		d(r.noticed), r.by, d(r.replanned), d(r.firstStep))
}
