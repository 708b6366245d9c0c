#!/usr/bin/env bash
# local-cluster.sh — a whole unipruning cluster as separate processes on one
# machine, over loopback: 1 NATS server, 3 coordinator replicas (Raft), 3
# shards (and optionally a standby). It submits a job, waits for it to
# finish (bounded), prints where the Γ store is, and stops every process it
# started on exit (normal end, error, Ctrl-C).
#
# Usage: deploy/local-cluster.sh [options]
#   --job FILE                 job JSON (default configs/job-stories260k-global.json);
#                              paths inside it are relative to the repository root
#   --workdir DIR              logs/, raft/, nats/, out/ go here (default: a new temp dir)
#   --bin PATH                 unipruning binary (default: build bin/unipruning)
#   --shards N                 shard processes to start (default: the job's "shards")
#   --standby                  also start a standby shard (id "standby")
#   --kill-shard-at-step K     kill -9 a shard (--victim, default the middle one) once
#                              step K is done, then start a replacement
#   --victim ID                the shard to kill (default s1)
#   --replacement-id ID        id of the replacement (default: the killed shard's id;
#                              "none": start no replacement, e.g. with --standby)
#   --kill-leader-at-step K    kill -9 the Raft leader (from `unipruning status --json`)
#                              once step K is done; it is restarted after --restart-after
#   --restart-after SEC        seconds before the killed leader is restarted (default 3;
#                              -1: leave it dead — 2 of 3 replicas keep the quorum)
#   --blobs SPEC               checkpoint store: jetstream (default) or fs:DIR
#   --heartbeat-timeout D      coordinator --heartbeat-timeout (default 2s)
#   --timeout SEC              give up after this long (default 900)
#   --keep-running             do not stop the processes when the job is done (Ctrl-C stops them)
#   --insecure                 run without authentication (default: `unipruning creds` makes
#                              per-role credentials in WORKDIR/creds; every role gets --auth,
#                              NATS serves TLS and enforces each role's subject permissions)
#
# Exit status: 0 when the job finished and the Γ store was written.
# Environment: UNIPRUNING_CLUSTER (NATS subject namespace, default "local").
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOB=configs/job-stories260k-global.json
WORKDIR=""
BIN=""
NSHARDS=""
STANDBY=0
KILL_SHARD_AT=0
VICTIM=s1
REPLACEMENT=""
KILL_LEADER_AT=0
RESTART_AFTER=3
BLOBS=jetstream
HB_TIMEOUT=2s
TIMEOUT=900
KEEP=0
INSECURE=0
CLUSTER=${UNIPRUNING_CLUSTER:-local}

die() { echo "local-cluster: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
	case "$1" in
	--job) JOB=$2; shift ;;
	--workdir) WORKDIR=$2; shift ;;
	--bin) BIN=$2; shift ;;
	--shards) NSHARDS=$2; shift ;;
	--standby) STANDBY=1 ;;
	--kill-shard-at-step) KILL_SHARD_AT=$2; shift ;;
	--victim) VICTIM=$2; shift ;;
	--replacement-id) REPLACEMENT=$2; shift ;;
	--kill-leader-at-step) KILL_LEADER_AT=$2; shift ;;
	--restart-after) RESTART_AFTER=$2; shift ;;
	--blobs) BLOBS=$2; shift ;;
	--heartbeat-timeout) HB_TIMEOUT=$2; shift ;;
	--timeout) TIMEOUT=$2; shift ;;
	--keep-running) KEEP=1 ;;
	--insecure) INSECURE=1 ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
	shift
done

# Relative paths given by the caller are resolved before we cd to the repo.
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
[ -f "$JOB" ] || [ -f "$REPO/$JOB" ] || die "job file $JOB not found"
[ -f "$JOB" ] && JOB=$(abspath "$JOB") || JOB=$REPO/$JOB
[ -n "$BIN" ] && BIN=$(abspath "$BIN")
if [ -z "$WORKDIR" ]; then
	WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/unipruning-local.XXXXXX")
else
	WORKDIR=$(abspath "$WORKDIR")
	mkdir -p "$WORKDIR"
	[ -z "$(ls -A "$WORKDIR")" ] || die "workdir $WORKDIR is not empty (Raft and NATS state would be reused)"
fi
case "$BLOBS" in fs:/*) ;; fs:*) BLOBS="fs:$(abspath "${BLOBS#fs:}")" ;; esac

# The job's model and calibration paths are relative to the repository
# root (../shared/data/...): every process runs there.
cd "$REPO"
if [ -z "$BIN" ]; then
	BIN=$REPO/bin/unipruning
	echo "building $BIN"
	go build -o "$BIN" ./cmd/unipruning
fi
[ -x "$BIN" ] || die "no binary at $BIN"
if [ -z "$NSHARDS" ]; then
	NSHARDS=$(sed -n 's/.*"shards"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*/\1/p' "$JOB" | head -1)
	[ -n "$NSHARDS" ] || die "cannot read \"shards\" from $JOB; pass --shards"
fi
[ -n "$REPLACEMENT" ] || REPLACEMENT=$VICTIM

LOGS=$WORKDIR/logs
OUT=$WORKDIR/out
mkdir -p "$LOGS" "$WORKDIR/raft" "$OUT"

# Free loopback ports: ask the kernel (bind to port 0) for each.
free_ports() {
	if command -v python3 >/dev/null; then
		python3 - "$1" <<-'EOF'
			import socket, sys
			socks = []
			for _ in range(int(sys.argv[1])):
			    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
			print(" ".join(str(s.getsockname()[1]) for s in socks))
		EOF
	else # fall back to random high ports that nobody answers on
		local out=() p
		while [ ${#out[@]} -lt "$1" ]; do
			p=$((20000 + RANDOM % 40000))
			(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || out+=("$p")
		done
		echo "${out[@]}"
	fi
}
read -r NATS_PORT R1 R2 R3 <<<"$(free_ports 4)"
NATS_URL=nats://127.0.0.1:$NATS_PORT
RAFT_ADDR=([1]=127.0.0.1:$R1 [2]=127.0.0.1:$R2 [3]=127.0.0.1:$R3)
PEERS="c1=${RAFT_ADDR[1]},c2=${RAFT_ADDR[2]},c3=${RAFT_ADDR[3]}"

# Credentials: one per role (coordinator, each shard id this run may start,
# client), or none with --insecure.
if [ $INSECURE = 1 ]; then
	AUTH=(--insecure)
	CLIENT_AUTH=()
else
	IDS=$(seq -s, -f 's%g' 0 $((NSHARDS - 1)))
	[ $STANDBY = 1 ] && IDS=$IDS,standby
	[ "$REPLACEMENT" = none ] || case ",$IDS," in *",$REPLACEMENT,"*) ;; *) IDS=$IDS,$REPLACEMENT ;; esac
	"$BIN" creds --out "$WORKDIR/creds" --cluster "$CLUSTER" --shard-ids "$IDS" --hosts localhost,127.0.0.1 ||
		die "unipruning creds failed"
	AUTH=(--auth "$WORKDIR/creds")
	CLIENT_AUTH=(--auth "$WORKDIR/creds")
fi

declare -A PID=()
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
log() { printf '[%s] %s\n' "$(date +%T)" "$*"; }

# start NAME ARGS...: run a unipruning role in the background, logging to
# $LOGS/NAME.log (appended: a restarted process keeps one file).
start() {
	local name=$1
	shift
	echo "=== $(date -Is) start: $BIN $*" >>"$LOGS/$name.log"
	"$BIN" "$@" >>"$LOGS/$name.log" 2>&1 &
	PID[$name]=$!
	log "started $name (pid ${PID[$name]})"
}
alive() { [ -n "${PID[$1]:-}" ] && kill -0 "${PID[$1]}" 2>/dev/null; }
kill9() {
	kill -9 "${PID[$1]}" 2>/dev/null || true
	wait "${PID[$1]}" 2>/dev/null || true
	unset "PID[$1]"
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	local n
	for n in "${!PID[@]}"; do kill -TERM "${PID[$n]}" 2>/dev/null || true; done
	for _ in $(seq 50); do
		local any=0
		for n in "${!PID[@]}"; do kill -0 "${PID[$n]}" 2>/dev/null && any=1; done
		[ $any = 0 ] && break
		sleep 0.1
	done
	for n in "${!PID[@]}"; do kill -9 "${PID[$n]}" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ ${#PID[@]} -eq 0 ] || log "stopped ${!PID[*]}"
	log "logs: $LOGS"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

coordinator() {
	local i=$1
	start "c$i" coordinator --id "c$i" --raft-bind "${RAFT_ADDR[$i]}" --raft-dir "$WORKDIR/raft/c$i" \
		--peers "$PEERS" --bootstrap --job "$JOB" --out "$OUT" \
		--nats "$NATS_URL" --cluster "$CLUSTER" --blobs "$BLOBS" --heartbeat-timeout "$HB_TIMEOUT" "${AUTH[@]}"
}
shardproc() { start "$1" shard --id "$1" --nats "$NATS_URL" --cluster "$CLUSTER" --blobs "$BLOBS" "${AUTH[@]}" "${@:2}"; }
status_json() { "$BIN" status --nats "$NATS_URL" --cluster "$CLUSTER" "${CLIENT_AUTH[@]}" --json 2>/dev/null; }
# field NAME: a top-level scalar of the status JSON on stdin.
field() { sed -n "s/^  \"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" | head -1; }
# latest_step: the highest step any coordinator has logged as done.
latest_step() {
	cat "$LOGS"/c[0-9]*.log 2>/dev/null | sed -n 's/.* msg=step .* k=\([0-9]*\) .*/\1/p' | sort -n | tail -1
}

log "job $JOB, workdir $WORKDIR"
log "NATS $NATS_URL, Raft peers $PEERS, cluster $CLUSTER, blobs $BLOBS, auth ${AUTH[*]}"
start nats nats --port "$NATS_PORT" --store "$WORKDIR/nats" "${AUTH[@]}"
for _ in $(seq 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && break
	alive nats || die "the NATS server exited: see $LOGS/nats.log"
	sleep 0.1
done
for i in 1 2 3; do coordinator "$i"; done
for i in $(seq 0 $((NSHARDS - 1))); do shardproc "s$i"; done
[ $STANDBY = 1 ] && shardproc standby --standby

T0=$(now)
DEADLINE=$(($(date +%s) + TIMEOUT))
shard_killed="" leader_killed="" killed_leader="" last_print=0
while :; do
	[ "$(date +%s)" -lt "$DEADLINE" ] || { log "TIMEOUT after ${TIMEOUT}s"; status_json || true; exit 1; }
	alive nats || { log "the NATS server exited: see $LOGS/nats.log"; exit 1; }
	step=$(latest_step)
	step=${step:-0}
	if [ "$KILL_SHARD_AT" -gt 0 ] && [ -z "$shard_killed" ] && [ "$step" -ge "$KILL_SHARD_AT" ]; then
		alive "$VICTIM" || die "no running shard $VICTIM to kill"
		kill9 "$VICTIM"
		shard_killed=$(now)
		log "KILLED shard $VICTIM with SIGKILL after step $step"
		if [ "$REPLACEMENT" != none ]; then shardproc "$REPLACEMENT"; fi
	fi
	if [ "$KILL_LEADER_AT" -gt 0 ] && [ -z "$leader_killed" ] && [ "$step" -ge "$KILL_LEADER_AT" ]; then
		leader=$(status_json | field leader || true)
		if [ -n "$leader" ] && alive "$leader"; then
			kill9 "$leader"
			leader_killed=$(now) killed_leader=$leader
			log "KILLED Raft leader $leader with SIGKILL after step $step"
		fi
	fi
	if [ -n "$leader_killed" ] && [ "$RESTART_AFTER" -ge 0 ] && ! alive "$killed_leader" &&
		awk -v a="$leader_killed" -v b="$(now)" -v d="$RESTART_AFTER" 'BEGIN { exit !(b - a >= d) }'; then
		coordinator "${killed_leader#c}"
		log "restarted $killed_leader (same Raft directory): it rejoins as a follower"
	fi
	# A coordinator returns once it has seen the replicated status "done".
	# Done: the Γ store is written and a replica reports "done". (Replicas
	# that have not learnt the final commit when the leader exits would wait
	# forever for a quorum: they are stopped after a grace period.)
	running=0
	for i in 1 2 3; do
		if alive "c$i"; then running=1; elif [ -n "${PID[c$i]:-}" ]; then
			wait "${PID[c$i]}" && rc=0 || rc=$?
			unset "PID[c$i]"
			[ "$rc" = 0 ] || log "coordinator c$i exited with status $rc (see $LOGS/c$i.log)"
		fi
	done
	if [ $running = 0 ]; then break; fi
	if [ -f "$OUT/gamma.json" ] && grep -qs 'msg="coordinator done" .*status=done' "$LOGS"/c[0-9]*.log; then
		for _ in $(seq 50); do
			left=0
			for i in 1 2 3; do alive "c$i" && left=1; done
			[ $left = 0 ] && break
			sleep 0.1
		done
		for i in 1 2 3; do
			if alive "c$i"; then
				log "c$i has not seen the final commit 5s after the job ended: stopping it"
				kill -TERM "${PID[c$i]}" 2>/dev/null || true
				wait "${PID[c$i]}" 2>/dev/null || true
			fi
			unset "PID[c$i]"
		done
		break
	fi
	if [ $(($(date +%s) - last_print)) -ge 5 ]; then
		last_print=$(date +%s)
		if st=$(status_json); then
			log "status: $(echo "$st" | field state) step $(echo "$st" | field step)/$(echo "$st" | field steps)" \
				"epoch $(echo "$st" | field epoch) leader $(echo "$st" | field leader)"
		fi
	fi
	sleep 0.1
done
ELAPSED=$(since "$T0")

# Timeline from the coordinators' logs (slog "time=" stamps, RFC 3339).
# first_ts T REGEX: the stamp (epoch seconds) of the first coordinator log
# line matching REGEX stamped after T ("" if none).
first_ts() {
	local t=$1 re=$2 line ts
	while IFS= read -r line; do
		ts=$(date -d "$(sed -n 's/^time=\([^ ]*\) .*/\1/p' <<<"$line")" +%s.%N 2>/dev/null) || continue
		if awk -v a="$ts" -v b="$t" 'BEGIN { exit !(a > b) }'; then
			echo "$ts"
			return
		fi
	done < <(cat "$LOGS"/c[0-9]*.log | grep -E "$re" | sort)
}
# timeline T EVENT: how long after T the cluster noticed, re-planned and
# completed its first step again.
timeline() {
	local t=$1 what=$2 re_notice=$3 notice epoch step
	notice=$(first_ts "$t" "$re_notice")
	epoch=$(first_ts "$t" 'assignment committed')
	step=""
	[ -n "$epoch" ] && step=$(first_ts "$epoch" 'msg=step ')
	rel() { [ -n "$1" ] && awk -v a="$1" -v b="$t" 'BEGIN { printf "+%.2fs", a - b }' || echo "n/a"; }
	log "$what: noticed $(rel "$notice"), new epoch committed $(rel "$epoch")," \
		"first step of the new epoch done $(rel "$step") (recovery time)"
}
[ -n "$shard_killed" ] && timeline "$shard_killed" "shard kill" 'shard lost'
[ -n "$leader_killed" ] && timeline "$leader_killed" "leader kill" 'msg=leading'

if [ ! -f "$OUT/gamma.json" ]; then
	log "FAILED: the coordinators stopped without writing $OUT/gamma.json (see $LOGS)"
	exit 1
fi
log "job done in ${ELAPSED}s"
echo "Γ store: $OUT  (manifest $OUT/gamma.json, parts:)"
(cd "$OUT" && sha256sum gamma/part-*.state)
if [ $KEEP = 1 ]; then
	log "--keep-running: NATS $NATS_URL still up; Ctrl-C stops everything"
	while alive nats; do sleep 1; done
fi
