#!/usr/bin/env bash
# The main job on bundled defaults: stories260K (a real trained llama2.c
# model) from ../shared/data when present, else a synthetic random model
# (which says nothing about quality; it only shows the pipeline runs).
set -euo pipefail
BIN=${1:-bin/unipruning}
DATA=${2:-../shared/data}
OUT=${OUT:-out/demo}
mkdir -p "$OUT"
if [ -f "$DATA/models/stories260K/stories260K.bin" ]; then
	MODEL=(--model "$DATA/models/stories260K/stories260K.bin" --tokenizer "$DATA/models/stories260K/tok512.bin")
	EVAL=(--dataset lines --text "$DATA/text/tinystories/TinyStories-validation-head-794K.txt" --seqlen 256)
	CALIB=(--calib "$DATA/text/tinystories/TinyStories-train-head-944K.txt" --calib-format lines)
else
	echo "demo: $DATA not found: using a SYNTHETIC random-weight model (no quality meaning)" >&2
	"$BIN" synth --layers 2 --dim 64 --hidden 172 --heads 8 --kv-heads 4 --vocab 512 --max-seq 512 --out "$OUT/synth" --force
	MODEL=(--model "$OUT/synth" --tokenizer "")
	EVAL=()
	CALIB=()
fi
if [ "${#EVAL[@]}" -gt 0 ]; then
	echo "== dense perplexity" >&2
	"$BIN" eval "${MODEL[@]}" "${EVAL[@]}"
	echo "== greedy sample" >&2
	"$BIN" generate "${MODEL[@]}" --prompt "Once upon a time" --steps 80 --temperature 0
fi
