#!/usr/bin/env bash
# Peak RSS of evaluation (whole model in memory vs layer-streamed, with the
# activations kept or spilled) and of the layer-wise baseline prune on
# synthetic LLaMA-shaped bf16 models of ≈110M, 374M and 1.1B parameters
# (issue 14 items 4 and 5; figures in docs/benchmarks.md). Random weights:
# the perplexities only check that every path gives the same number.
#
#   scripts/scale-stream.sh            # all three sizes
#   SIZES="m110 m374" scripts/scale-stream.sh
#
# Settings: wikitext2 (wiki.test.raw, LLaMA-2 tokenizer), seqlen 128, the
# first 2 windows, batch 2; prune: wanda 50%, 2 calibration windows of 128
# tokens (lines sampler over wiki.test.raw, seed 0), batch 2: small, so the
# figures are about weights, not activations (they add nsamples × seqlen ×
# dim × 4 B; see the footprint estimates). Peak RSS is the
# kernel's maxrss reported by GNU time. Models are written once to $WORK.
set -euo pipefail
BIN=${BIN:-bin/unipruning}
DATA=${DATA:-../shared/data}
WORK=${WORK:-out/scale-stream}
SIZES=${SIZES:-m110 m374 m1b}
TOK=$DATA/models/llama2-tokenizer
TEXT=$DATA/text/wikitext-2-raw/wiki.test.raw
mkdir -p "$WORK/spill"
synth() { # name, flags
	local n=$1; shift
	[ -f "$WORK/$n/config.json" ] || "$BIN" synth "$@" --dtype bf16 --tokenizer-from "$TOK" --out "$WORK/$n" >/dev/null
}
for s in $SIZES; do
	case $s in
	m110) synth m110 --layers 12 --dim 768 --hidden 2048 --heads 12 ;;
	m374) synth m374 --layers 24 --dim 1024 --hidden 2816 --heads 16 --untied ;;
	m1b) synth m1b --layers 22 --dim 2048 --hidden 5632 --heads 32 --kv-heads 4 --untied ;;
	esac
done
# measure LABEL CMD...: runs CMD under GNU time, prints "LABEL rss_mib seconds ppl"
measure() {
	local label=$1; shift
	local log=$WORK/$label.log
	/usr/bin/time -f '%M %e' -o "$WORK/$label.time" "$@" >"$WORK/$label.json" 2>"$log"
	read -r kb secs <"$WORK/$label.time"
	local ppl
	ppl=$(grep -o '"ppl": [0-9.e+]*' "$WORK/$label.json" | head -1 | cut -d' ' -f2 || true)
	printf '%s %.0f %s %s\n' "$label" "$(awk -v k="$kb" 'BEGIN{print k/1024}')" "$secs" "${ppl:--}"
}
echo "| model | params | f32 weights MiB | run | peak RSS MiB | seconds | ppl |"
echo "|---|---|---|---|---|---|---|"
for s in $SIZES; do
	M=$WORK/$s
	read -r params f32 < <(python3 - "$M/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
d, h, v, L = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["num_hidden_layers"]
hd = c.get("head_dim") or d // c["num_attention_heads"]
q, kv = c["num_attention_heads"] * hd, c.get("num_key_value_heads", c["num_attention_heads"]) * hd
layer = 2 * d + d * q + 2 * d * kv + q * d + 3 * d * h
n = v * d * (1 if c.get("tie_word_embeddings") else 2) + d + L * layer
print(f"{n/1e6:.0f}M {4*n/2**20:.0f}")
PY
)
	EV=(eval --model "$M" --dataset wikitext2 --text "$TEXT" --seqlen 128 --limit 2 --batch 2 --json)
	for run in "whole:--stream off" "streamed:--stream on" "spilled:--stream on --spill-dir $WORK/spill"; do
		label=${run%%:*}; flags=${run#*:}
		# shellcheck disable=SC2086
		read -r _ rss secs ppl < <(measure "$s-$label" "$BIN" "${EV[@]}" $flags)
		printf '| %s | %s | %s | eval %s | %s | %s | %s |\n' "$s" "$params" "$f32" "$label" "$rss" "$secs" "$ppl"
	done
	rm -rf "$WORK/$s-pruned"
	read -r _ rss secs _ < <(measure "$s-prune" "$BIN" prune --model "$M" --method wanda --sparsity 0.5 \
		--calib "$TEXT" --calib-format lines --nsamples 2 --seqlen 128 --batch 2 --out "$WORK/$s-pruned" --json)
	printf '| %s | %s | %s | prune wanda 50%% | %s | %s | |\n' "$s" "$params" "$f32" "$rss" "$secs"
	rm -rf "$WORK/$s-pruned"
done
