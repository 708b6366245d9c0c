#!/usr/bin/env bash
# Regenerates the generated blocks of docs/results.md and docs/img/*.png
# (issue 15): perplexity of every baseline and of UniPruning with
# --lr auto, without and with --reconstruct obs, at 50/60/70/80%, 2:4 and
# 4:8 on stories260K, for several calibration seeds (mean ± sd), on
# evaluation windows no tuning used; whether UniPruning beats every
# baseline in every run; and the check that --lr auto lands within 5% of
# the best fixed learning rate of a sweep at 60%, 70% and 2:4.
#
# Protocol: calibration = 128 windows of 256 tokens from
# TinyStories-train-head-944K.txt (lines sampler, seed S); evaluation =
# TinyStories-validation-head-794K.txt, lines protocol, seqlen 256, windows
# $WINDOWS (default 300:500 — the first 300 windows were the proxy of the old
# hand sweep, docs/sweep.md; --lr auto tunes on calibration windows only).
# Every step skips what is already on disk, so an interrupted run resumes.
#
# Environment: BIN, DATA, OUT, DOC, SEEDS ("0 1 2"), SWEEP_SEEDS (as SEEDS),
# WINDOWS ("300:500"; "300:" for all windows after the first 300), STEPS (128; smaller only for a smoke test of this script),
# PHASES ("table sweep report": the per-seed outputs, the fixed-rate sweep,
# the generated blocks; phases of different seeds may run in parallel).
set -euo pipefail
BIN=${BIN:-bin/unipruning}
DATA=${DATA:-../shared/data}
OUT=${OUT:-out/results}
DOC=${DOC:-docs/results.md}
IMG=${IMG:-docs/img}
read -r -a SEEDS <<< "${SEEDS:-0 1 2}"
read -r -a SWEEP_SEEDS <<< "${SWEEP_SEEDS:-${SEEDS[*]}}"
WINDOWS=${WINDOWS:-300:500}
read -r -a PHASES <<< "${PHASES:-table sweep report}"
phase() { [[ " ${PHASES[*]} " == *" $1 "* ]]; }
STEPS=${STEPS:-128} # search steps = calibration windows (the baselines' nsamples too)
M=(--model "$DATA/models/stories260K/stories260K.bin" --tokenizer "$DATA/models/stories260K/tok512.bin")
CAL=(--calib "$DATA/text/tinystories/TinyStories-train-head-944K.txt" --calib-format lines --seqlen 256)
EV=(--eval-dataset lines --eval-text "$DATA/text/tinystories/TinyStories-validation-head-794K.txt" --eval-windows "$WINDOWS")
SPARSITIES=(0.5 0.6 0.7 0.8)
PATTERNS=(2:4 4:8)
LRS=(1e-4 3e-4 1e-3 3e-3 1e-2 3e-2)
CHECK=(0.6 0.7 2:4)
BASELINES=(magnitude wanda ria sparsegpt)
name() { case $1 in *:*) echo "pattern-${1%%:*}of${1##*:}";; *) printf 'sparsity-%.2f' "$1";; esac; }
list() { local IFS=,; echo "$*"; }
ppl() { jq -r '[.evals[] | select(.model == "pruned") | .ppl][0]' "$1/report.json"; }
spars=$(list "${SPARSITIES[@]}"); pats=$(list "${PATTERNS[@]}")
first=1
phase table && for seed in "${SEEDS[@]}"; do
	T="$OUT/seed-$seed/table"
	mkdir -p "$T"
	for m in "${BASELINES[@]}"; do
		for t in "${SPARSITIES[@]}" "${PATTERNS[@]}"; do
			dir="$T/$m/$(name "$t")"
			[ -f "$dir/report.json" ] && continue
			case $t in *:*) tgt=(--pattern "$t");; *) tgt=(--sparsity "$t");; esac
			skip=(--eval-skip-dense); [ $first = 1 ] && skip=()
			echo "== seed $seed: $m $t" >&2
			"$BIN" prune "${M[@]}" "${CAL[@]}" --seed "$seed" --nsamples "$STEPS" --method "$m" "${tgt[@]}" "${EV[@]}" "${skip[@]}" --out "$dir" --force >/dev/null
			first=0
		done
	done
	# UniPruning as `run` ships it: global mode, --lr auto (probes scored at
	# these targets on held-out calibration windows), masks from |Γ|.
	run="$T/unipruning"
	if [ ! -f "$run/summary.json" ]; then
		echo "== seed $seed: unipruning run --lr auto" >&2
		"$BIN" run "${M[@]}" "${CAL[@]}" --seed "$seed" --steps "$STEPS" --mode global --lr auto --inproc \
			--sparsity "$spars" --pattern "$pats" "${EV[@]}" --eval-skip-dense --out "$run" --force >/dev/null
	fi
	dest="$T/unipruning+obs"
	if [ ! -d "$dest" ]; then
		echo "== seed $seed: unipruning extract --reconstruct obs" >&2
		"$BIN" extract --run "$run/search" --sparsity "$spars" --pattern "$pats" --reconstruct obs "${EV[@]}" --eval-skip-dense --out "$dest" >/dev/null
	fi
done
# The fixed-rate sweep for the --lr auto check: the same search at each rate
# of the probe grid, masks at 60%, 70%, 2:4, evaluated on the same windows.
phase sweep && for seed in "${SWEEP_SEEDS[@]}"; do
	for lr in "${LRS[@]}"; do
		run="$OUT/sweep/seed-$seed/runs/lr-$lr"
		if [ ! -f "$run/gamma.json" ]; then
			echo "== seed $seed: sweep search lr $lr" >&2
			"$BIN" search "${M[@]}" "${CAL[@]}" --seed "$seed" --steps "$STEPS" --mode global --lr "$lr" --out "$run" --force >/dev/null
		fi
		dest="$OUT/sweep/seed-$seed/x/lr-$lr"
		[ -d "$dest" ] || "$BIN" extract --run "$run" --sparsity 0.6,0.7 --pattern 2:4 "${EV[@]}" --eval-skip-dense --out "$dest" >/dev/null
	done
done
phase report || exit 0
{
	echo "| seed | target | best fixed lr (ppl) | --lr auto: lr (ppl) | auto vs best | within 5%? |"
	echo "|---|---|---|---|---:|---|"
	for seed in "${SWEEP_SEEDS[@]}"; do
		[ -f "$OUT/seed-$seed/table/unipruning/search/lr-auto.json" ] || continue
		auto=$(jq -r '.lr' "$OUT/seed-$seed/table/unipruning/search/lr-auto.json")
		for t in "${CHECK[@]}"; do
			tn=$(name "$t")
			best=""; bestlr=""
			for lr in "${LRS[@]}"; do
				p=$(ppl "$OUT/sweep/seed-$seed/x/lr-$lr/$tn")
				if [ -z "$best" ] || awk -v a="$p" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$p; bestlr=$lr; fi
			done
			a=$(ppl "$OUT/seed-$seed/table/unipruning/pruned/$tn")
			awk -v s="$seed" -v t="$t" -v bl="$bestlr" -v b="$best" -v al="$auto" -v a="$a" 'BEGIN {
				d = 100 * (a / b - 1); printf "| %s | %s | %s (%.3f) | %g (%.3f) | %+.1f%% | %s |\n", s, t, bl, b, al, a, d, (d <= 5 ? "yes" : "**no**") }'
		done
	done
} > "$OUT/lrcheck.md"
{
	echo "| seed | chosen lr | held-out calibration NLL per probe lr (mean over the targets) |"
	echo "|---|---|---|"
	for seed in "${SEEDS[@]}"; do
		[ -f "$OUT/seed-$seed/table/unipruning/search/lr-auto.json" ] || continue
		jq -r --arg s "$seed" '"| \($s) | \(.lr) | " + ([.probes[] | "\(.lr): \(.score * 1000 | round / 1000)"] | join(", ")) + " |"' \
			"$OUT/seed-$seed/table/unipruning/search/lr-auto.json"
	done
} > "$OUT/probes.md"
roots=(); for seed in "${SEEDS[@]}"; do roots+=(--root "$OUT/seed-$seed/table"); done
mkdir -p "$(dirname "$DOC")" "$IMG"
"$BIN" table "${roots[@]}" --png "$IMG" \
	--order "$(list "${BASELINES[@]}"),unipruning,unipruning+obs" --wins unipruning,unipruning+obs --against "$(list "${BASELINES[@]}")" \
	--title "Perplexity of pruned stories260K (TinyStories validation head, lines, seqlen 256, windows $WINDOWS; calibration seeds ${SEEDS[*]}; lower is better; best mean per column in bold)" \
	--md "$OUT/table.md"
# Replace each generated block of docs/results.md (between its markers).
splice() { # marker, file
	if grep -q "<!-- BEGIN GENERATED $1 -->" "$DOC"; then
		awk -v table="$2" -v begin="<!-- BEGIN GENERATED $1 -->" -v end="<!-- END GENERATED $1 -->" '
			$0 == begin { print; while ((getline line < table) > 0) print line; skip = 1; next }
			$0 == end { skip = 0 }
			!skip { print }' "$DOC" > "$DOC.tmp" && mv "$DOC.tmp" "$DOC"
	else
		{ echo; echo "<!-- BEGIN GENERATED $1 -->"; cat "$2"; echo "<!-- END GENERATED $1 -->"; } >> "$DOC"
	fi
}
[ -f "$DOC" ] || echo "# Results" > "$DOC"
splice TABLE "$OUT/table.md"
splice "LR CHECK" "$OUT/lrcheck.md"
splice PROBES "$OUT/probes.md"
echo "docs/results.md updated from $OUT" >&2
