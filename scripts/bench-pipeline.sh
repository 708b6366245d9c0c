#!/usr/bin/env bash
# bench-pipeline.sh — issue 16: search step time with 1, 2, … single-core shard
# processes over NATS, with and without sequence pipelining (--chunk).
#
# For every shard count S and chunk size C it starts a NATS server, one
# coordinator and S shard processes, each pinned to one core (taskset -c,
# GOMAXPROCS=1, OpenBLAS single-threaded), runs a global-mode search of
# --steps steps on a synthetic 110M LLaMA model (12 layers, dim 768, MLP 2048,
# 12 heads, the LLaMA-2 tokenizer's 32000-token vocabulary, tied head) with
# TinyStories calibration windows of --seqlen tokens, and reads the per-step
# seconds from the coordinator's log. Step 1 (first touch of every buffer) is
# left out of the mean. It also times the same search in one process
# (`search --shards 1`, pinned the same way): the cluster's overhead per step is
# the 1-shard cluster step against it.
#
# Usage: scripts/bench-pipeline.sh [options]
#   --shards "1 2"     shard counts (default "1 2"; each needs a core: cores are
#                      used round-robin, so S > nproc shares cores)
#   --chunks "0 128"   chunk sizes (0 = one chunk per window; default "0 128")
#   --seqlen N         window length (default 1024)
#   --steps K          steps per search (default 4)
#   --workdir DIR      model, logs and runs (default /tmp/unipruning-bench-pipeline;
#                      the synthetic model is made once and reused)
#   --bin PATH         unipruning binary (default: build it with -tags openblas)
#   --out FILE         also write the table as TSV to FILE
#   --no-local         skip the one-process baseline (its column reads n/a)
#
# The table: shards, chunk, mean step seconds (steps 2..K), speedup against
# the 1-shard cluster run of the same chunk size, and the one-process
# search's mean step (steps 2..K) — the cluster's overhead per step is the
# 1-shard cluster step against it. Run it on a quiet machine: other processes on the cores skew it.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARDS="1 2"
CHUNKS="0 128"
SEQLEN=1024
STEPS=4
WORKDIR=/tmp/unipruning-bench-pipeline
BIN=""
OUTFILE=""
LOCAL=1
# A shard on one busy core can miss the default 2 s of heartbeats while it
# encodes its Γ part; the benchmark is not about failure detection.
HB=60s

die() { echo "bench-pipeline: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
	case "$1" in
	--shards) SHARDS=$2; shift ;;
	--chunks) CHUNKS=$2; shift ;;
	--seqlen) SEQLEN=$2; shift ;;
	--steps) STEPS=$2; shift ;;
	--workdir) WORKDIR=$2; shift ;;
	--bin) BIN=$2; shift ;;
	--out) OUTFILE=$2; shift ;;
	--no-local) LOCAL=0 ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
	shift
done
[ "$STEPS" -ge 2 ] || die "--steps must be at least 2 (step 1 is left out)"
command -v taskset >/dev/null || die "taskset (util-linux) is needed to pin shards to cores"

mkdir -p "$WORKDIR"
WORKDIR=$(cd "$WORKDIR" && pwd)
DATA=$REPO/../shared/data
[ -d "$DATA" ] || DATA=/work/shared/data
CALIB=$DATA/text/tinystories/TinyStories-train-head-944K.txt
TOK=$DATA/models/llama2-tokenizer
[ -f "$CALIB" ] && [ -d "$TOK" ] || die "shared data not found under $DATA"
if [ -z "$BIN" ]; then
	BIN=$WORKDIR/unipruning
	(cd "$REPO" && go build -tags openblas -o "$BIN" ./cmd/unipruning)
fi
MODEL=$WORKDIR/synth-110m
if [ ! -f "$MODEL/model.safetensors" ]; then
	"$BIN" synth --layers 12 --dim 768 --hidden 2048 --heads 12 --tokenizer-from "$TOK" --seed 1 --out "$MODEL" --force >&2
fi
NCPU=$(nproc)
# Cluster roles that require credentials accept --insecure on loopback.
INSECURE=()
"$BIN" shard --help 2>&1 | grep -q -- '--insecure' && INSECURE=(--insecure)

free_ports() {
	python3 - "$1" <<-'EOF'
		import socket, sys
		socks = []
		for _ in range(int(sys.argv[1])):
		    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
		print(" ".join(str(s.getsockname()[1]) for s in socks))
	EOF
}

PIDS=()
stop_all() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	PIDS=()
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# mean_steps LOG: mean of the "seconds" of steps 2.. in a log of slog lines
# with k=… seconds=… (the coordinator's "step" lines).
mean_steps() {
	sed -n 's/.*msg=step .*k=\([0-9]*\) .*seconds=\([0-9.]*\).*/\1 \2/p' "$1" |
		awk '$1 >= 2 { s += $2; n++ } END { if (n) printf "%.2f", s / n; else print "n/a" }'
}

seconds_of() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["seconds"])' "$1"; }

pinned() { # pinned CORE CMD...: one core, one Go thread, one OpenBLAS thread
	local core=$1
	shift
	GOMAXPROCS=1 OPENBLAS_NUM_THREADS=1 taskset -c "$core" "$@"
}

# cluster S C: one search on S shard processes; prints the mean step seconds.
cluster() {
	local s=$1 c=$2 dir=$WORKDIR/cluster-s$1-c$2
	rm -rf "$dir"
	mkdir -p "$dir/logs" "$dir/blobs" "$dir/out"
	cat >"$dir/job.json" <<-EOF
		{"id": "bench-s$s-c$c", "shards": $s, "spec": {"model": "$MODEL", "mode": "global",
		 "calib_path": "$CALIB", "calib_format": "lines", "seqlen": $SEQLEN, "steps": $STEPS,
		 "checkpoint_every": 0, "chunk": $c}}
	EOF
	local nport rport
	read -r nport rport <<<"$(free_ports 2)"
	local url=nats://127.0.0.1:$nport
	"$BIN" nats --port "$nport" --store "$dir/nats" "${INSECURE[@]}" >"$dir/logs/nats.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$nport") 2>/dev/null && break; sleep 0.1; done
	local common=(--nats "$url" --cluster "bench$s$c" --blobs "fs:$dir/blobs" "${INSECURE[@]}")
	"$BIN" coordinator --id c1 --raft-bind "127.0.0.1:$rport" --raft-dir "$dir/raft" --peers "c1=127.0.0.1:$rport" \
		--bootstrap --job "$dir/job.json" --out "$dir/out" --heartbeat-timeout "$HB" "${common[@]}" >"$dir/logs/c1.log" 2>&1 &
	local coord=$!
	PIDS+=($coord)
	for i in $(seq 0 $((s - 1))); do
		pinned $((i % NCPU)) "$BIN" shard --id "s$i" "${common[@]}" >"$dir/logs/s$i.log" 2>&1 &
		PIDS+=($!)
	done
	wait "$coord" || { stop_all; die "coordinator failed: see $dir/logs"; }
	[ -f "$dir/out/gamma.json" ] || { stop_all; die "no Γ store in $dir/out: see $dir/logs"; }
	stop_all
	mean_steps "$dir/logs/c1.log"
}

# local C: the same search in one process on one core. Its progress lines
# carry no step times, so it runs twice, K steps and 1 step: the mean of
# steps 2..K is the difference of the two runs' seconds over K − 1.
local_search() {
	local c=$1 dir=$WORKDIR/local-c$1 k t1 tk
	rm -rf "$dir"
	mkdir -p "$dir"
	for k in 1 "$STEPS"; do
		pinned 0 "$BIN" search --model "$MODEL" --calib "$CALIB" --calib-format lines --seqlen "$SEQLEN" \
			--steps "$k" --checkpoint-every 0 --chunk "$c" --json --out "$dir/run$k" 2>"$dir/search$k.log" >"$dir/gamma$k.json"
	done
	t1=$(seconds_of "$dir/gamma1.json")
	tk=$(seconds_of "$dir/gamma$STEPS.json")
	awk -v a="$t1" -v b="$tk" -v k="$STEPS" 'BEGIN { printf "%.2f", (b - a) / (k - 1) }'
}

printf 'machine: %s cores, %s; load average %s\n' "$NCPU" "$(uname -m)" "$(cut -d' ' -f1-3 /proc/loadavg)" >&2
ROWS=()
for c in $CHUNKS; do
	base=""
	one=n/a
	[ $LOCAL = 0 ] || one=$(local_search "$c")
	for s in $SHARDS; do
		t=$(cluster "$s" "$c")
		[ -n "$base" ] || base=$t
		sp=$(awk -v a="$base" -v b="$t" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
		ROWS+=("$s	$c	$t	$sp	$one")
		printf 'shards %s chunk %s: %s s/step (speedup %s), one process %s s/step\n' "$s" "$c" "$t" "$sp" "$one" >&2
	done
done
printf 'shards\tchunk\tstep_s\tspeedup\tone_process_step_s\n'
printf '%s\n' "${ROWS[@]}"
if [ -n "$OUTFILE" ]; then
	{ printf 'shards\tchunk\tstep_s\tspeedup\tone_process_step_s\n'; printf '%s\n' "${ROWS[@]}"; } >"$OUTFILE"
fi
