#!/usr/bin/env bash
# The main job on the bundled defaults: `unipruning run` — embedded NATS,
# single-node Raft, in-process shards — searches Γ once on stories260K (a
# real trained llama2.c model from ../shared/data), extracts 50/60/70/80%
# and 2:4 masks from it, and evaluates each next to the dense model.
# Without ../shared/data it synthesizes a random-weight model with a
# byte-level tokenizer and random text (no quality meaning; it only shows
# the pipeline runs) and says so.
set -euo pipefail
BIN=${1:-bin/unipruning}
DATA=${2:-../shared/data}
OUT=${OUT:-out/demo}
if [ -f "$DATA/models/stories260K/stories260K.bin" ]; then
	UNIPRUNING_DATA=$DATA exec "$BIN" run --out "$OUT" --force --shards 2
fi
echo "demo: $DATA not found: using a SYNTHETIC random-weight model (results have no quality meaning)" >&2
mkdir -p "$OUT"
"$BIN" synth --layers 4 --dim 128 --hidden 344 --heads 8 --kv-heads 4 --vocab 512 --max-seq 512 --with-data --out "$OUT/synth" --force
exec "$BIN" run --model "$OUT/synth" --calib "$OUT/synth/calib.txt" --calib-format lines --seqlen 128 \
	--steps 32 --eval-dataset lines --eval-text "$OUT/synth/eval.txt" --out "$OUT/run" --force --shards 2
