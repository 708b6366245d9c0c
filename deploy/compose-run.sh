#!/usr/bin/env bash
# compose-run.sh — run a job on the containerised cluster of deploy/compose.yaml:
# build the static binary and the FROM scratch image, `compose up -d`, wait
# for the job (polling `unipruning status` through the NATS port published
# on 127.0.0.1), copy the Γ store out of the shared volume, `compose down -v`.
#
# Usage: deploy/compose-run.sh [options]
#   --job NAME            job file in configs/ (default job-stories260k-global.json)
#   --out DIR             where to copy the Γ store (default: a new temp dir)
#   --project NAME        compose project name (default unipruning-$$)
#   --no-build            use the existing image (UNIPRUNING_IMAGE, default unipruning:dev)
#   --fault F             inject a fault once step --fault-at-step is done:
#                           kill-shard        docker kill s1 (restarted as a new incarnation)
#                           disconnect-shard  docker network disconnect s1 for --outage s, reconnect
#                           stop-leader       docker stop the leader coordinator (left stopped)
#                           kill-leader       docker kill the leader coordinator, start it again
#   --fault-at-step K     default 10
#   --outage SEC          default 5
#   --timeout SEC         give up after this long (default 600)
#   --keep                leave the containers and volumes (compose down -v yourself)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOB=job-stories260k-global.json
OUT=""
PROJECT=unipruning-$$
BUILD=1
FAULT=""
FAULT_AT=10
OUTAGE=5
TIMEOUT=600
KEEP=0
export UNIPRUNING_IMAGE=${UNIPRUNING_IMAGE:-unipruning:dev}
export CLUSTER=${CLUSTER:-compose}

die() { echo "compose-run: $*" >&2; exit 2; }
log() { printf '[%s] %s\n' "$(date +%T)" "$*"; }
while [ $# -gt 0 ]; do
	case "$1" in
	--job) JOB=$(basename "$2"); shift ;;
	--out) OUT=$2; shift ;;
	--project) PROJECT=$2; shift ;;
	--no-build) BUILD=0 ;;
	--fault) FAULT=$2; shift ;;
	--fault-at-step) FAULT_AT=$2; shift ;;
	--outage) OUTAGE=$2; shift ;;
	--timeout) TIMEOUT=$2; shift ;;
	--keep) KEEP=1 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
	shift
done
case "$FAULT" in "" | kill-shard | disconnect-shard | stop-leader | kill-leader) ;; *) die "unknown --fault $FAULT" ;; esac
[ -f "$REPO/configs/$JOB" ] || die "no job configs/$JOB"
export JOB
[ -n "$OUT" ] || OUT=$(mktemp -d "${TMPDIR:-/tmp}/unipruning-compose.XXXXXX")/run
case "$OUT" in /*) ;; *) OUT=$PWD/$OUT ;; esac
[ ! -e "$OUT" ] || [ -z "$(ls -A "$OUT")" ] || die "$OUT exists and is not empty"

command -v docker >/dev/null || die "docker not found"
if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose); elif command -v docker-compose >/dev/null; then COMPOSE=(docker-compose); else die "neither 'docker compose' nor docker-compose"; fi
dc() { "${COMPOSE[@]}" -p "$PROJECT" -f "$REPO/deploy/compose.yaml" "$@"; }

cd "$REPO"
if [ $BUILD = 1 ]; then
	log "building bin/unipruning-static and the image $UNIPRUNING_IMAGE"
	CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o bin/unipruning-static ./cmd/unipruning
	docker build -q -t "$UNIPRUNING_IMAGE" . >/dev/null
fi
BIN=$REPO/bin/unipruning-static
[ -x "$BIN" ] || BIN=$REPO/bin/unipruning
[ -x "$BIN" ] || die "no host binary for 'unipruning status' (make static)"

# Per-role credentials for this project (TLS + one key per role), in a
# private directory; the files are made readable by the containers' uid
# (0644) while the 0700 directory keeps other host users out.
CREDS_STAGE=$(mktemp -d "${TMPDIR:-/tmp}/unipruning-compose-creds.XXXXXX")
"$BIN" creds --out "$CREDS_STAGE/creds" --cluster "$CLUSTER" --shard-ids s0,s1,s2 \
	--hosts nats,c1,c2,c3,localhost,127.0.0.1 >/dev/null 2>&1 || die "unipruning creds failed"
chmod 0644 "$CREDS_STAGE"/creds/*
export CREDS_DIR=$CREDS_STAGE/creds

NATS_PORT=${NATS_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 14222)}
export NATS_PORT
NATS_URL=nats://127.0.0.1:$NATS_PORT

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ $rc != 0 ]; then
		log "failed (status $rc): last coordinator log lines"
		dc logs --no-color --tail 15 c1 c2 c3 2>/dev/null || true
	fi
	if [ $KEEP = 1 ]; then
		log "--keep: credentials in $CREDS_DIR (status: $BIN status --nats $NATS_URL --cluster $CLUSTER --auth $CREDS_DIR)"
		log "--keep: project $PROJECT left running; stop it with: ${COMPOSE[*]} -p $PROJECT -f deploy/compose.yaml down -v"
	else
		dc down -v --remove-orphans >/dev/null 2>&1 || true
		rm -rf "$CREDS_STAGE"
		log "containers, network and volumes of $PROJECT removed"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "project $PROJECT, job configs/$JOB, NATS published on $NATS_URL"
dc up -d 2>&1 | sed 's/^/  /'
declare -A CID=()
while read -r svc id; do CID[$svc]=$id; done < <(docker ps -a --filter "label=com.docker.compose.project=$PROJECT" \
	--format '{{.Label "com.docker.compose.service"}} {{.ID}}')
for svc in nats c1 c2 c3 s0 s1 s2; do [ -n "${CID[$svc]:-}" ] || die "no container for service $svc"; done
cid() { echo "${CID[$1]}"; }
status_json() { "$BIN" status --nats "$NATS_URL" --cluster "$CLUSTER" --auth "$CREDS_DIR" --json 2>/dev/null; }
field() { sed -n "s/^  \"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" | head -1; }
done_logged() {
	local c
	for c in c1 c2 c3; do docker logs "$(cid $c)" 2>&1 | grep -q 'msg="coordinator done".*status=done' && return 0; done
	return 1
}
# timeline: the coordinators' recovery events (what the fault caused).
timeline() {
	local c
	for c in c1 c2 c3; do
		docker logs "$(cid $c)" 2>&1 | grep -E 'msg=leading|msg="assignment committed"|msg="shard lost|msg="attempt failed|msg=resumed|msg="job done"' || true
	done | sort | sed -E 's/ level=[A-Z]+//; s/ coordinator=c[0-9]+//; s/^/  /' | cut -c1-240
}

START=$(date +%s.%N)
DEADLINE=$(($(date +%s) + TIMEOUT))
fault_done="" last=0 step=0
while :; do
	[ "$(date +%s)" -lt "$DEADLINE" ] || { log "TIMEOUT after ${TIMEOUT}s"; exit 1; }
	if st=$(status_json); then
		step=$(echo "$st" | field step)
		leader=$(echo "$st" | field leader)
		if [ $(($(date +%s) - last)) -ge 5 ]; then
			last=$(date +%s)
			log "status: $(echo "$st" | field state) step $step/$(echo "$st" | field steps) epoch $(echo "$st" | field epoch) leader $leader"
		fi
	fi
	if [ -n "$FAULT" ] && [ -z "$fault_done" ] && [ "${step:-0}" -ge "$FAULT_AT" ]; then
		fault_done=$(date +%s.%N)
		net=$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' "$(cid s1)" | awk '{print $1}')
		case "$FAULT" in
		kill-shard)
			docker kill "$(cid s1)" >/dev/null
			log "FAULT: docker kill s1 after step $step"
			sleep 1
			if [ "$(docker inspect -f '{{.State.Running}}' "$(cid s1)")" != true ]; then
				docker start "$(cid s1)" >/dev/null
				log "s1 started again (same id, new incarnation)"
			fi
			;;
		disconnect-shard)
			docker network disconnect "$net" "$(cid s1)"
			log "FAULT: s1 disconnected from $net after step $step for ${OUTAGE}s"
			sleep "$OUTAGE"
			docker network connect --alias s1 "$net" "$(cid s1)"
			log "s1 reconnected"
			;;
		stop-leader | kill-leader)
			[ -n "$leader" ] || die "no leader in the status"
			if [ "$FAULT" = stop-leader ]; then
				docker stop "$(cid "$leader")" >/dev/null
				log "FAULT: docker stop of the leader $leader after step $step"
			else
				docker kill "$(cid "$leader")" >/dev/null
				log "FAULT: docker kill of the leader $leader after step $step"
				sleep 3
				docker start "$(cid "$leader")" >/dev/null
				log "$leader started again"
			fi
			;;
		esac
	fi
	if done_logged; then break; fi
	sleep 0.2
done
ELAPSED=$(awk -v a="$START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

mkdir -p "$(dirname "$OUT")"
docker cp "$(cid c1):/out/run" "$OUT"
[ -f "$OUT/gamma.json" ] || die "the job ended but $OUT/gamma.json is missing"
log "job done in ${ELAPSED}s; Γ store copied to $OUT"
log "coordinator events:"
timeline
(cd "$OUT" && sha256sum gamma/part-*.state)
