package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/internal/shareddata"
)

// parseTaskFlags registers the task flags on a fresh command (with an own
// --limit first when ownLimit, as eval has) and parses args.
func parseTaskFlags(t *testing.T, ownLimit bool, args ...string) *taskFlags {
	t.Helper()
	cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }}
	var tf taskFlags
	if ownLimit { // as eval registers its own --limit
		cmd.Flags().IntVar(&tf.limit, "limit", 0, "score only the first N windows")
	}
	registerTaskFlags(cmd, &tf)
	if err := cmd.Flags().Parse(args); err != nil {
		t.Fatal(err)
	}
	return &tf
}

func TestTaskFlags(t *testing.T) {
	if parseTaskFlags(t, false).enabled() {
		t.Error("enabled without --tasks")
	}
	tf := parseTaskFlags(t, false, "--tasks", "piqa,boolq", "--limit", "7", "--tasks-dir", "/d", "--tasks-batch", "3")
	if n := tf.limit; !tf.enabled() || n != 7 || tf.dir != "/d" || tf.batch != 3 {
		t.Fatalf("flags not parsed: %+v (limit %d)", tf, n)
	}
	// eval already has --limit: it is shared, not redefined (which would panic).
	shared := parseTaskFlags(t, true, "--tasks", "all", "--limit", "5")
	if n := shared.limit; n != 5 {
		t.Fatalf("shared --limit: %d", n)
	}
}

// TestRunTasksAndTable scores two tasks on stories260K with a limit and
// checks the report and the printed table.
func TestRunTasksAndTable(t *testing.T) {
	bin := shareddata.Path(t, "models/stories260K/stories260K.bin")
	m, err := openModel(bin, shareddata.Path(t, "models/stories260K/tok512.bin"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer m.ck.Close()
	dir := filepath.Dir(filepath.Dir(shareddata.Path(t, "tasks/piqa/piqa.jsonl")))
	tf := parseTaskFlags(t, false, "--tasks", "piqa,hellaswag", "--limit", "3", "--tasks-dir", dir)
	calls, last := 0, 0
	rep, err := runTasks(m.w, m.tok, tf, func(done, total int) { calls, last = calls+1, done })
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Tasks) != 2 || rep.Tasks[0].N != 3 || rep.Tasks[1].N != 3 || rep.Limit != 3 {
		t.Fatalf("report: %+v", rep)
	}
	if calls == 0 || last != 3*2+3*4 {
		t.Errorf("progress: %d calls, last %d, want 18 requests", calls, last)
	}
	var buf bytes.Buffer
	fprintTaskTable(&buf, rep)
	out := buf.String()
	for _, want := range []string{"piqa", "hellaswag", "acc_norm", "mean acc over 2 tasks", "1,000-item subset", "limited to the first 3 of 1838"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tasks", "squad", "--tasks-dir", dir}, `unknown task "squad"`},
		{[]string{"--tasks", "piqa", "--tasks-dir", t.TempDir()}, "piqa.jsonl"},
	} {
		_, err := runTasks(m.w, m.tok, parseTaskFlags(t, false, c.args...), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
		}
	}
}
