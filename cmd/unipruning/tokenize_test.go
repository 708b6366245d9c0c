package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unipruning/unipruning/internal/shareddata"
)

func runTokenize(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := tokenizeCmd()
	var out, stderr bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&stderr)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// TestTokenize: --jsonl gives one {"ids"} line per text line (the ids of
// the families' own tests), --bos adds the tokenizer's BOS, --text encodes
// a whole file; bad use is a clear error.
func TestTokenize(t *testing.T) {
	dir := t.TempDir()
	jsonl := filepath.Join(dir, "in.jsonl")
	os.WriteFile(jsonl, []byte(`{"text": "Hello, world!"}`+"\n\n"+`{"text": "Line 1\nLine 22\n", "id": 7}`+"\n"), 0o644)
	text := filepath.Join(dir, "in.txt")
	os.WriteFile(text, []byte("This is a test sentence."), 0o644)
	qwen2 := shareddata.Path(t, "tokenizers/qwen2")
	llama3 := shareddata.Path(t, "tokenizers/llama3/tokenizer.model")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tokenizer", qwen2, "--jsonl", jsonl}, "{\"ids\":[9707,11,1879,0]}\n{\"ids\":[2460,220,16,198,2460,220,17,17,198]}\n"},
		{[]string{"--tokenizer", qwen2, "--bos", "--jsonl", jsonl}, "{\"ids\":[9707,11,1879,0]}\n{\"ids\":[2460,220,16,198,2460,220,17,17,198]}\n"},
		{[]string{"--tokenizer", llama3, "--bos", "--text", text}, "{\"ids\":[128000,2028,374,264,1296,11914,13]}\n"},
		{[]string{"--tokenizer", llama3, "--text", text}, "{\"ids\":[2028,374,264,1296,11914,13]}\n"},
	} {
		got, err := runTokenize(t, c.args...)
		if err != nil || got != c.want {
			t.Errorf("%v: %q (%v), want %q", c.args, got, err, c.want)
		}
	}
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(`{"text": "a"}`+"\n"+`{"txt": "b"}`+"\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tokenizer", qwen2}, "exactly one of --text FILE and --jsonl FILE"},
		{[]string{"--jsonl", jsonl}, "give --model DIR or --tokenizer PATH"},
		{[]string{"--tokenizer", qwen2, "--jsonl", bad}, `line 2 has no "text" field`},
		{[]string{"--model", shareddata.Path(t, "models/stories260K/stories260K.bin"), "--tokenizer", qwen2, "--text", text}, "vocab_size is 512"},
	} {
		out, err := runTokenize(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(out, "ids") {
			t.Errorf("%v: %v (output %q), want an error containing %q and no ids", c.args, err, out, c.want)
		}
	}
}
