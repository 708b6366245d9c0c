package synth

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"

	"github.com/unipruning/unipruning/internal/seeded"
)

// WriteData writes a byte-fallback llama2.c tokenizer and two texts of
// random words (format tests only).
func WriteData(dir string, vocab int, seed uint64) error {
	if vocab < 262 {
		return fmt.Errorf("random data needs a vocabulary of at least 262 (3 control + 256 byte tokens + a few pieces), not %d", vocab)
	}
	var b bytes.Buffer
	put := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	put(int32(16))
	piece := func(s string, score float32) {
		put(score)
		put(int32(len(s)))
		b.WriteString(s)
	}
	piece("<unk>", 0)
	piece("\n<s>\n", 0)
	piece("\n</s>\n", 0)
	for i := 0; i < 256; i++ {
		piece(fmt.Sprintf("<0x%02X>", i), 0)
	}
	piece(" ", -1)
	letters := "etaoinshrdlucmfwypvbgkjqxz"
	for i := 259 + 1; i < vocab; i++ {
		k := i - 260
		switch {
		case k < len(letters):
			piece(letters[k:k+1], -2)
		case k < 2*len(letters):
			piece(" "+letters[k-len(letters):k-len(letters)+1], -3)
		default: // unique unreachable pieces pad the vocabulary
			piece(fmt.Sprintf("\xff%04x", k), -100)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.bin"), b.Bytes(), 0o644); err != nil {
		return err
	}
	for i, name := range []string{"calib.txt", "eval.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), randomWords(seed+uint64(i), 2000), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func randomWords(seed uint64, lines int) []byte {
	r := seeded.New(seed, 0x7e47)
	var b bytes.Buffer
	for l := 0; l < lines; l++ {
		for w := 0; w < 12; w++ {
			for c := 0; c < 2+r.IntN(6); c++ {
				b.WriteByte(byte('a' + r.IntN(26)))
			}
			b.WriteByte(' ')
		}
		b.WriteString("end.\n")
	}
	return b.Bytes()
}
