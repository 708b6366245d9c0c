package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/unipruning/unipruning/eval"
	"github.com/unipruning/unipruning/model"
	"github.com/unipruning/unipruning/model/tokenizer"
)

func tokenizeCmd() *cobra.Command {
	var modelPath, tokPath, textPath, jsonlPath string
	var bos bool
	cmd := &cobra.Command{
		Use:   "tokenize",
		Short: "Print the token ids of a text file or of each line of a JSONL file",
		Long: `Tokenize text with a model's tokenizer (or a tokenizer on its own) and print
the ids as JSON on stdout: with --jsonl one {"ids": [...]} line per input line
(each a JSON object with a "text" field, as calibration data is read; blank
lines are skipped), with --text one {"ids": [...]} line for the whole file.
The tokenizer is recognised by content: llama2.c tokenizer.bin, SentencePiece
or Llama-3 tiktoken tokenizer.model, Hugging Face tokenizer.json, or a
directory with vocab.json + merges.txt. With --model its size is checked
against the model's vocab_size. A summary goes to stderr.`,
		Example: `  unipruning tokenize --model Llama-3.2-1B --jsonl calib.jsonl
  unipruning tokenize --tokenizer qwen2/ --bos --text wiki.test.raw`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (textPath == "") == (jsonlPath == "") {
				return errors.New("give exactly one of --text FILE and --jsonl FILE")
			}
			tok, err := tokenizerFor(modelPath, tokPath)
			if err != nil {
				return err
			}
			var texts []string
			if textPath != "" {
				data, err := readInput(textPath)
				if err != nil {
					return err
				}
				texts = []string{string(data)}
			} else {
				data, err := readInput(jsonlPath)
				if err != nil {
					return err
				}
				if texts, err = eval.JSONLTexts(data); err != nil {
					return fmt.Errorf("%s: %w", jsonlPath, err)
				}
			}
			start, total := time.Now(), 0
			out := bufio.NewWriter(cmd.OutOrStdout())
			enc := json.NewEncoder(out)
			for _, s := range texts {
				ids := tok.Encode(s, bos, false)
				if ids == nil {
					ids = []int{}
				}
				total += len(ids)
				if err := enc.Encode(struct {
					IDs []int `json:"ids"`
				}{ids}); err != nil {
					return err
				}
			}
			if err := out.Flush(); err != nil {
				return err
			}
			logf("%d text(s), %d tokens (%s tokenizer, %d ids) in %.2fs", len(texts), total, tok.Kind(), tok.VocabSize(), time.Since(start).Seconds())
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&modelPath, "model", "", "model (HF directory or llama2.c .bin) whose tokenizer to use")
	fl.StringVar(&tokPath, "tokenizer", "", "tokenizer file or directory (alone, or overriding the model's)")
	fl.StringVar(&textPath, "text", "", "text file to tokenize as one string (- = stdin)")
	fl.StringVar(&jsonlPath, "jsonl", "", `JSONL file whose lines' "text" fields are tokenized one by one (- = stdin)`)
	fl.BoolVar(&bos, "bos", false, "put the tokenizer's BOS token in front of each text (when it has one)")
	return cmd
}

// tokenizerFor loads the tokenizer of a model (checked against its
// vocab_size) or a tokenizer given alone.
func tokenizerFor(modelPath, tokPath string) (tokenizer.Tokenizer, error) {
	if modelPath == "" {
		if tokPath == "" {
			return nil, errors.New("give --model DIR or --tokenizer PATH")
		}
		return tokenizer.Load(tokPath)
	}
	ck, err := model.Open(modelPath, tokPath)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	return ck.LoadTokenizer()
}

func readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}
