// Package synth writes random-weight models and random data in the real
// formats: for format, scale and speed tests only — such a model says
// nothing about pruning quality.
package synth

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/unipruning/unipruning/internal/seeded"
	"github.com/unipruning/unipruning/model"
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

// Tensors lists the tensors of a random model; each is generated from
// its own seeded stream, so the output does not depend on write order.
func Tensors(c *model.Config, seed uint64) []model.HFTensor {
	var ts []model.HFTensor
	add := func(name string, shape []int, std, mean float64) {
		id := uint64(len(ts))
		ts = append(ts, model.HFTensor{Name: name, Shape: shape, Fill: func(dst []float32) error {
			r := seeded.New(seed, 0x5e17, id)
			for i := range dst {
				dst[i] = float32(mean + std*r.NormFloat64())
			}
			return nil
		}})
	}
	add(model.EmbedName, []int{c.Vocab, c.Dim}, 0.02, 0) // HF-style init: logits stay O(1)
	for l := 0; l < c.Layers; l++ {
		add(model.AttnNormName(l), []int{c.Dim}, 0.1, 1)
		for m := model.Matrix(0); m < model.NumMatrices; m++ {
			o, i := m.Shape(c)
			add(model.Target{Layer: l, Matrix: m}.TensorName(), []int{o, i}, 1/math.Sqrt(float64(i)), 0)
		}
		add(model.MLPNormName(l), []int{c.Dim}, 0.1, 1)
	}
	add(model.NormName, []int{c.Dim}, 0.1, 1)
	if !c.TiedHead {
		add(model.HeadName, []int{c.Vocab, c.Dim}, 1/math.Sqrt(float64(c.Dim)), 0)
	}
	return ts
}
