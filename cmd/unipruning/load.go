package main

import (
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/model/tokenizer"
	"github.com/unipruning/unipruning/nn"
)

// loaded is an opened model with its tokenizer and (optionally) weights.
type loaded struct {
	ck  *model.Checkpoint
	tok tokenizer.Tokenizer
	w   *nn.Weights[float32]
}

// openModel opens a checkpoint and its tokenizer; with weights it also
// loads the whole model into memory.
func openModel(path, tokPath string, weights bool) (*loaded, error) {
	if path == "" {
		return nil, missingFlag("model", "an HF directory, a llama2.c .bin file or an output directory")
	}
	ck, err := model.Open(path, tokPath)
	if err != nil {
		return nil, err
	}
	l := &loaded{ck: ck}
	if l.tok, err = ck.LoadTokenizer(); err != nil {
		ck.Close()
		return nil, err
	}
	if weights {
		if l.w, err = nn.Load[float32](ck, nn.Whole(ck.Config)); err != nil {
			ck.Close()
			return nil, err
		}
	}
	return l, nil
}
