#!/usr/bin/env bash
# Evaluation under a real memory limit (issue 14 item 4): a container with
# `docker run --memory $LIMIT` (no swap) evaluates the ≈1.1B-parameter
# synthetic model of scripts/scale-stream.sh, whose whole float32 copy
# (≈4.2 GiB) does not fit the limit.
#   1. --stream off             refuses up front: "needs X GiB, the machine offers Y"
#   2. --stream off --memory 64GiB (a false budget, so the check passes):
#                               loads the whole model and is OOM-killed (exit 137)
#   3. --stream auto            streams layer by layer and completes (peak RSS in the JSON)
#   4. --stream on --spill-dir  the same with the activations on disk
#   5. the same static binary on the host, no limit, --stream off: the
#      reference perplexity the streamed runs must equal bit for bit
# The image is the FROM scratch one of the Dockerfile (static pure-Go binary,
# gonum kernel), tagged unipruning:stream.
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA=${DATA:-$REPO/../shared/data}
MODEL=${MODEL:-$REPO/out/scale-stream/m1b}
LIMIT=${LIMIT:-2g}
IMAGE=${IMAGE:-unipruning:stream}
WORK=${WORK:-$REPO/out/scale-stream}
cd "$REPO"
if [ "${NO_BUILD:-}" = "" ]; then
	CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o bin/unipruning-static ./cmd/unipruning || exit 1
	docker build -q -t "$IMAGE" . >/dev/null || exit 1
fi
[ -f "$MODEL/config.json" ] || { echo "no model at $MODEL: run scripts/scale-stream.sh first" >&2; exit 1; }
mkdir -p "$WORK/docker-spill" && chmod 777 "$WORK/docker-spill"
run() { # label, flags...
	local label=$1; shift
	local start=$SECONDS
	docker run --rm --memory "$LIMIT" --memory-swap "$LIMIT" \
		-v "$MODEL:/model:ro" -v "$DATA/text/wikitext-2-raw:/text:ro" -v "$WORK/docker-spill:/spill" \
		"$IMAGE" eval --model /model --dataset wikitext2 --text /text/wiki.test.raw \
		--seqlen 128 --limit 2 --batch 2 --json "$@" >"$WORK/docker-$label.json" 2>"$WORK/docker-$label.log"
	local rc=$?
	local rss ppl
	rss=$(grep -o '"peak_rss_bytes": [0-9]*' "$WORK/docker-$label.json" | cut -d' ' -f2)
	ppl=$(grep -o '"ppl": [0-9.e+]*' "$WORK/docker-$label.json" | cut -d' ' -f2)
	printf '| %s | %s | exit %d | %s | %s | %ds |\n' "$label" "$*" "$rc" \
		"$( [ -n "$rss" ] && awk -v b="$rss" 'BEGIN{printf "%.0f MiB", b/1048576}' || echo -)" "${ppl:--}" $((SECONDS - start))
	grep -E "needs|offers|streamed|Killed" "$WORK/docker-$label.log" | sed 's/^/    /' >&2
}
echo "limit $LIMIT, model $MODEL"
echo "| run | flags | result | peak RSS | ppl | wall |"
echo "|---|---|---|---|---|---|"
run refuse --stream off
run oom --stream off --memory 64GiB
run stream --stream auto
run spill --stream on --spill-dir /spill
start=$SECONDS
bin/unipruning-static eval --model "$MODEL" --dataset wikitext2 --text "$DATA/text/wikitext-2-raw/wiki.test.raw" \
	--seqlen 128 --limit 2 --batch 2 --json --stream off >"$WORK/host-whole.json" 2>"$WORK/host-whole.log"
rc=$?
rss=$(grep -o '"peak_rss_bytes": [0-9]*' "$WORK/host-whole.json" | cut -d' ' -f2)
ppl=$(grep -o '"ppl": [0-9.e+]*' "$WORK/host-whole.json" | cut -d' ' -f2)
printf '| host, no limit | --stream off | exit %d | %s | %s | %ds |\n' "$rc" \
	"$(awk -v b="${rss:-0}" 'BEGIN{printf "%.0f MiB", b/1048576}')" "${ppl:--}" $((SECONDS - start))
# 6. the layer-wise baseline prune of the same model under $PRUNE_LIMIT
#    (default 1g: a quarter of the float32 model): one layer resident.
if [ "${PRUNE:-1}" = 1 ]; then
	PRUNE_LIMIT=${PRUNE_LIMIT:-1g}
	rm -rf "$WORK/docker-spill/pruned"
	start=$SECONDS
	docker run --rm --memory "$PRUNE_LIMIT" --memory-swap "$PRUNE_LIMIT" \
		-v "$MODEL:/model:ro" -v "$DATA/text/wikitext-2-raw:/text:ro" -v "$WORK/docker-spill:/spill" \
		"$IMAGE" prune --model /model --method wanda --sparsity 0.5 --calib /text/wiki.test.raw --calib-format lines \
		--nsamples 2 --seqlen 128 --batch 2 --out /spill/pruned >"$WORK/docker-prune.out" 2>"$WORK/docker-prune.log"
	rc=$?
	printf '| prune wanda 50%% under %s | --nsamples 2 --seqlen 128 | exit %d | - | - | %ds |\n' "$PRUNE_LIMIT" "$rc" $((SECONDS - start))
	grep -E "needs|offers" "$WORK/docker-prune.log" | sed 's/^/    /' >&2
	rm -rf "$WORK/docker-spill/pruned"
fi
