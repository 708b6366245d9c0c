package tokenizer

import (
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/unipruning/unipruning/internal/shareddata"
)

// TestByteBPEFamilyGoldens: the ids the families' own tests give
// (tokenizers/PROVENANCE.md), through every loading path.
func TestByteBPEFamilyGoldens(t *testing.T) {
	for _, name := range []string{"llama3/tiktoken", "llama3/tokenizer.json"} {
		tok := loadByName(t, name)
		// meta-llama/llama-models test_tokenizer.py: test_encode, test_decode.
		ids := []int{128000, 2028, 374, 264, 1296, 11914, 13, 128001}
		if got := tok.Encode("This is a test sentence.", true, true); !slices.Equal(got, ids) {
			t.Errorf("%s: %v, want %v", name, got, ids)
		}
		if got, want := tok.Decode(ids), "<|begin_of_text|>This is a test sentence.<|end_of_text|>"; got != want {
			t.Errorf("%s: Decode %q, want %q", name, got, want)
		}
		// test_encode_message: a header, then the text, then <|eot_id|>
		// (special tokens in the text are matched as such).
		msg := "<|start_header_id|>user<|end_header_id|>\n\nThis is a test sentence.<|eot_id|>"
		want := []int{128006, 882, 128007, 271, 2028, 374, 264, 1296, 11914, 13, 128009}
		if got := tok.Encode(msg, false, false); !slices.Equal(got, want) {
			t.Errorf("%s: message %v, want %v", name, got, want)
		}
	}
	for _, name := range []string{"qwen2/vocab+merges", "qwen2/tokenizer.json"} {
		tok := loadByName(t, name)
		for _, c := range []struct {
			text string
			ids  []int
		}{
			{"Hello, world!", []int{9707, 11, 1879, 0}},
			{"Name one JVM language.", []int{675, 825, 72379, 4128, 13}},
			{"Line 1\nLine 22\n", []int{2460, 220, 16, 198, 2460, 220, 17, 17, 198}},
		} {
			if got := tok.Encode(c.text, true, true); !slices.Equal(got, append(c.ids, tok.EOS())) {
				t.Errorf("%s %q: %v, want %v + EOS (and no BOS)", name, c.text, got, c.ids)
			}
		}
	}
}

// TestWholePieceFirst: a pre-token that is itself a token encodes to that
// token even where merging its bytes would end elsewhere (tiktoken's rule,
// tokenizers' ignore_merges; the "Cửa Việt" case of Llama-3).
func TestWholePieceFirst(t *testing.T) {
	for _, name := range []string{"llama3/tiktoken", "llama3/tokenizer.json"} {
		tok := loadByName(t, name).(*ByteBPE)
		merged := tok.model
		merged.wholeFirst = false
		differ := 0
		sc := llama3Scanner{maxDigits: 3}
		for id := range 128000 {
			p := tok.text[id]
			if len(p) < 2 || sc.matchAt(p, 0) != len(p) || strings.ContainsRune(toValidUTF8(p), '\ufffd') {
				continue // not one whole pre-token of valid text
			}
			if got := tok.Encode(p, false, false); !slices.Equal(got, []int{id}) {
				t.Fatalf("%s: token %d %q encodes to %v", name, id, p, got)
			}
			if m := merged.encode(p, nil); !slices.Equal(m, []int{id}) {
				differ++
			}
		}
		// Without the rule some tokens would not come out whole; if none
		// did, this test would not be testing the rule.
		if differ == 0 {
			t.Errorf("%s: merging alone gives every token back: the rule is untested", name)
		}
		t.Logf("%s: %d tokens come out whole only by the whole-piece rule", name, differ)
	}
}

// TestByteBPEWikiText: on every line of WikiText-2 test, Decode(Encode(x))
// is x for every tokenizer, and the two Llama-3 loading paths (tiktoken's
// rank merging, tokenizer.json's listed merges) give the same ids for the
// whole file, as do Qwen2's.
func TestByteBPEWikiText(t *testing.T) {
	raw, err := os.ReadFile(shareddata.Path(t, wikiPath))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	lines := strings.SplitAfter(text, "\n")
	whole := map[string][]int{}
	for _, c := range byteBPEPaths() {
		if c.golden == "deepseek-r1-qwen" {
			continue
		}
		tok := loadByName(t, c.name)
		whole[c.name] = tok.Encode(text, false, false)
		if c.name == "qwen2/tokenizer.json" || c.name == "gpt2/tokenizer.json" {
			continue // same ids (below) and decode tables as vocab+merges
		}
		for i, l := range lines {
			if d := tok.Decode(tok.Encode(l, false, false)); d != l {
				t.Fatalf("%s: line %d: Decode(Encode(%q)) = %q", c.name, i, l, d)
			}
		}
	}
	for _, p := range [][2]string{{"llama3/tiktoken", "llama3/tokenizer.json"}, {"qwen2/vocab+merges", "qwen2/tokenizer.json"}, {"gpt2/vocab+merges", "gpt2/tokenizer.json"}} {
		a, b := whole[p[0]], whole[p[1]]
		if !slices.Equal(a, b) {
			t.Errorf("%s and %s differ on wiki.test.raw (%d and %d tokens)", p[0], p[1], len(a), len(b))
		}
	}
	t.Logf("wiki.test.raw: Llama-3 %d tokens, Qwen2 %d, GPT-2 %d", len(whole["llama3/tiktoken"]), len(whole["qwen2/vocab+merges"]), len(whole["gpt2/vocab+merges"]))
}

// TestByteBPEConcurrent: Encode from several goroutines gives the serial ids
// (the merge and split scratch comes from pools).
func TestByteBPEConcurrent(t *testing.T) {
	raw, err := os.ReadFile(shareddata.Path(t, wikiPath))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(raw), "\n")[:2000]
	for _, name := range []string{"llama3/tiktoken", "qwen2/vocab+merges"} {
		tok := loadByName(t, name)
		want := make([][]int, len(lines))
		for i, l := range lines {
			want[i] = tok.Encode(l, true, false)
		}
		var wg sync.WaitGroup
		errs := make(chan string, 4)
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := g; i < len(lines); i += 4 {
					if got := tok.Encode(lines[i], true, false); !slices.Equal(got, want[i]) {
						errs <- name + ": " + lines[i]
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Errorf("concurrent Encode differs: %s", e)
		}
	}
}
