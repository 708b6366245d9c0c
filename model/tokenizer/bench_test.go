package tokenizer

import (
	"os"
	"strings"
	"testing"

	"github.com/unipruning/unipruning/internal/shareddata"
)

const wikiPath = "text/wikitext-2-raw/wiki.test.raw"

// benchEncode reports MB/s of encoding wiki.test.raw (1.29 MB) both as one
// string (how eval tokenizes a corpus) and line by line (many documents).
func benchEncode(b *testing.B, rel string) {
	raw, err := os.ReadFile(shareddata.Path(b, wikiPath))
	if err != nil {
		b.Fatal(err)
	}
	tok := mustLoad(b, rel)
	text := string(raw)
	lines := strings.SplitAfter(text, "\n")
	b.Run("whole", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		b.ReportAllocs()
		for b.Loop() {
			tok.Encode(text, true, false)
		}
	})
	b.Run("lines", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		b.ReportAllocs()
		for b.Loop() {
			for _, l := range lines {
				tok.Encode(l, true, false)
			}
		}
	})
}

func BenchmarkEncodeLlama2C(b *testing.B) {
	b.Run("tok512", func(b *testing.B) { benchEncode(b, tok512Path) })
	b.Run("llama2", func(b *testing.B) { benchEncode(b, llamaBinPath) })
}

func BenchmarkEncodeSentencePiece(b *testing.B) {
	benchEncode(b, llamaSPPath)
}

func BenchmarkDecodeLlama2C(b *testing.B) {
	raw, err := os.ReadFile(shareddata.Path(b, wikiPath))
	if err != nil {
		b.Fatal(err)
	}
	tok := mustLoad(b, llamaBinPath)
	ids := tok.Encode(string(raw), true, false)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		tok.Decode(ids)
	}
}

// BenchmarkEncodeByteBPE: wiki.test.raw (1.29 MB) with the byte-level BPE
// tokenizers; tok/s is the figure docs/benchmarks.md quotes.
func BenchmarkEncodeByteBPE(b *testing.B) {
	raw, err := os.ReadFile(shareddata.Path(b, wikiPath))
	if err != nil {
		b.Fatal(err)
	}
	text := string(raw)
	for _, c := range []struct {
		name string
		load func(testing.TB) Tokenizer
	}{
		{"llama3-tiktoken", func(t testing.TB) Tokenizer { return mustLoad(t, llama3TiktokenPath) }},
		{"llama3-tokenizer.json", func(t testing.TB) Tokenizer { return loadPath(t, llama3TokenizerJSON(t)) }},
		{"qwen2", func(t testing.TB) Tokenizer { return mustLoad(t, qwen2Dir) }},
		{"gpt2", func(t testing.TB) Tokenizer { return mustLoad(t, gpt2Dir) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			tok := c.load(b)
			n := 0
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				n = len(tok.Encode(text, true, false))
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}
