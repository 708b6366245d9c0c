package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/unipruning/unipruning/internal/shareddata"
)

// execute runs the command line args as main does and returns its error,
// exit status and stdout.
func execute(t *testing.T, args ...string) (error, int, string) {
	t.Helper()
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(io.Discard)
	var err error
	out := captureStdout(t, func() { err = root.Execute() })
	code := 0
	if err != nil {
		code = exitCode(err)
	}
	return err, code, out
}

// captureStdout returns what f writes on os.Stdout.
func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		done <- b
	}()
	defer func() { os.Stdout = old }()
	f()
	w.Close()
	return string(<-done)
}

// TestFlagValidation: every command refuses bad flag values in one message
// style, before any work, with exit status 2; a failure of the work itself
// exits with 1.
func TestFlagValidation(t *testing.T) {
	m := shareddata.Path(t, "models/stories260K/stories260K.bin")
	tok := shareddata.Path(t, "models/stories260K/tok512.bin")
	txt := shareddata.Path(t, "text/tinystories/TinyStories-validation-head-794K.txt")
	out := filepath.Join(t.TempDir(), "out")
	prune := []string{"prune", "--model", m, "--tokenizer", tok, "--method", "wanda", "--calib", txt, "--calib-format", "lines", "--out", out}
	search := []string{"search", "--model", m, "--tokenizer", tok, "--calib", txt, "--calib-format", "lines", "--out", out}
	cases := []struct {
		args []string
		want string
		code int
	}{
		{append(prune, "--sparsity", "-0.1"), "--sparsity -0.1: outside [0, 1)", 2},
		{append(prune, "--sparsity=-0.5", "--pattern", "2:4"), "not both", 2},
		{append(prune, "--pattern", "2/4"), "--pattern 2/4: want N:M with 1 ≤ N < M", 2},
		{append(prune, "--sparsity", "0.5", "--seqlen", "0"), "--seqlen 0: must be positive", 2},
		{append(prune, "--sparsity", "0.5", "--nsamples", "-2"), "--nsamples -2: must be positive", 2},
		{prune, "--sparsity is required: give --sparsity P (unstructured) or --pattern N:M", 2},
		{[]string{"prune"}, "--calib, --method, --model and --out are required", 2},
		{[]string{"prune", "--model", m, "--calib", txt, "--out", out, "--sparsity", "0.5"}, "--method is required: magnitude, wanda, ria or sparsegpt", 2},
		{append(search, "--steps", "0"), "--steps 0: must be positive", 2},
		{append(search, "--steps", "-3"), "--steps -3: must be positive", 2},
		{append(search, "--seqlen", "0"), "--seqlen 0: must be positive", 2},
		{append(search, "--metric", "wand"), "unknown metric \"wand\"", 2},
		{[]string{"extract", "--run", out, "--out", out, "--sparsity", "1.5"}, "--sparsity 1.5: outside [0, 1)", 2},
		{[]string{"extract", "--run", out, "--out", out, "--pattern", "4:2"}, "--pattern 4:2: want N:M", 2},
		{[]string{"eval", "--model", m, "--dataset", "lines", "--text", txt, "--seqlen", "-1"}, "--seqlen -1: must be positive", 2},
		{[]string{"eval", "--bogus"}, "unknown flag: --bogus", 2},
		{[]string{"generate", "--model", m, "--steps", "0"}, "--steps 0: must be positive", 2},
		{[]string{"eval", "--model", filepath.Join(t.TempDir(), "none"), "--dataset", "lines", "--text", txt}, "no such file", 1},
	}
	for _, c := range cases {
		err, code, _ := execute(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) || code != c.code {
			t.Errorf("%s: got %v (exit %d), want %q (exit %d)", strings.Join(c.args, " "), err, code, c.want, c.code)
		}
		if _, serr := os.Stat(out); serr == nil {
			t.Fatalf("%s: a refused command wrote %s", strings.Join(c.args, " "), out)
		}
	}
}

// TestHelp: --help marks exactly the flags a command cannot run without as
// required, states every flag's default, and states the exit statuses.
func TestHelp(t *testing.T) {
	root := newRoot()
	for _, cmd := range root.Commands() {
		var help bytes.Buffer
		cmd.SetOut(&help)
		if err := cmd.Help(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(help.String(), "Exit status: 0 on success, 1 when the work failed, 2 on an invalid command line") {
			t.Errorf("%s --help does not state the exit statuses", cmd.Name())
		}
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			_, req := f.Annotations[requiredAnnotation]
			if marked := strings.Contains(f.Usage, "(required)"); marked != req {
				t.Errorf("%s --%s: usage %q, required %v", cmd.Name(), f.Name, f.Usage, req)
			}
			stated := strings.Contains(f.Usage, "default") || req || f.Value.Type() == "bool" ||
				!(f.DefValue == "" || f.DefValue == "0" || f.DefValue == "[]" || f.DefValue == "0s")
			if !stated {
				t.Errorf("%s --%s: the help states no default: %q", cmd.Name(), f.Name, f.Usage)
			}
		})
	}
	run := findCmd(t, root, "run")
	for _, name := range []string{"model", "calib", "sparsity", "pattern"} {
		if strings.Contains(run.Flags().Lookup(name).Usage, "required") {
			t.Errorf("run --%s is marked required: the bundled defaults supply it", name)
		}
	}
}

func findCmd(t *testing.T, root *cobra.Command, name string) *cobra.Command {
	for _, c := range root.Commands() {
		if c.Name() == name {
			return c
		}
	}
	t.Fatalf("no command %s", name)
	return nil
}

// TestOutputDirectoryLoads: eval and generate take a llama2.c output
// directory as --model (the model and tokenizer inside are found), and
// eval --json prints one JSON object.
func TestOutputDirectoryLoads(t *testing.T) {
	f := storiesPrune(t, "magnitude")
	f.sparsity = ptr(0.5)
	if err := runPrune(f); err != nil {
		t.Fatal(err)
	}
	txt := shareddata.Path(t, "text/tinystories/TinyStories-validation-head-794K.txt")
	err, _, out := execute(t, "eval", "--model", f.out, "--dataset", "lines", "--text", txt, "--seqlen", "64", "--limit", "2", "--json")
	if err != nil {
		t.Fatalf("eval on the output directory: %v", err)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil || res["ppl"] == nil {
		t.Fatalf("eval --json printed %q (%v)", out, err)
	}
	err, _, out = execute(t, "generate", "--model", f.out, "--steps", "3", "--json")
	if err != nil {
		t.Fatalf("generate on the output directory: %v", err)
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res["text"] == nil {
		t.Fatalf("generate --json printed %q (%v)", out, err)
	}
}

// TestExtractJSON: extract --json prints one JSON object holding every
// target's report.
func TestExtractJSON(t *testing.T) {
	run := search(t, smallSpec(t, "frozen"), 1)
	out := filepath.Join(t.TempDir(), "x")
	err, _, stdout := execute(t, "extract", "--run", run, "--out", out, "--sparsity", "0.5", "--pattern", "2:4", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Run, Out string
		Reports  map[string]struct {
			Method string  `json:"method"`
			Total  float64 `json:"total_sparsity"`
		}
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(&res); err != nil || dec.More() {
		t.Fatalf("stdout is not one JSON object (%v): %q", err, stdout)
	}
	if res.Run != run || res.Out != out || len(res.Reports) != 2 || res.Reports["pattern-2of4"].Method != "unipruning-frozen" || res.Reports["sparsity-0.50"].Total < 0.49 {
		t.Fatalf("extract --json: %+v", res)
	}
}
