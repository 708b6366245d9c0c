#!/usr/bin/env bash
# bench_search.sh — issue 17's whole-process comparison (`make bench-search`).
#
# For a synthetic 110M LLaMA (12 layers, dim 768, MLP 2048, 12 heads, vocab
# 32000, f32) it runs, at each seqlen and with OPENBLAS_CORETYPE as the
# environment sets it and unset:
#   - `unipruning search --mode global` (STEPS steps): wall, user, sys, peak
#     RSS, the per-step phases from gamma.json, and peak RSS against
#     `search --dry-run --json`'s plan;
#   - tools/bench/torch_search.py: forward + backward + clip + AdamW on the
#     same model and window length, same threads (needs python3-torch);
#   - forward only: `unipruning eval` against torch_search.py --forward-only,
#     tokens/s.
# and prints one markdown table. Everything is reproducible from this script:
# the model is made by `unipruning synth --seed 0`, the windows by seeded
# samplers. Run it on a quiet machine; on a shared one say "under load".
#
# usage: tools/bench/bench_search.sh [BIN]
#   env: BENCH_DIR (default /tmp/unipruning-bench), SEQLENS ("256 1024"),
#        STEPS (8), THREADS (2), CORETYPES ("env unset"), EVAL_WINDOWS (8), PYTHON
set -euo pipefail
BIN=$(realpath "${1:-bin/unipruning}")
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${BENCH_DIR:-/tmp/unipruning-bench}
SEQLENS=${SEQLENS:-"256 1024"}
STEPS=${STEPS:-8}
THREADS=${THREADS:-2}
CORETYPES=${CORETYPES:-"env unset"}
EVAL_WINDOWS=${EVAL_WINDOWS:-8}
MODEL=$DIR/s110
mkdir -p "$DIR"
if [ ! -f "$MODEL/model.safetensors" ]; then
	"$BIN" synth --layers 12 --dim 768 --hidden 2048 --heads 12 --vocab 32000 --max-seq 2048 --seed 0 --with-data --out "$MODEL" >&2
fi
# Debian's python3-torch lives in the system interpreter, which a pyenv or
# venv python3 on PATH may hide.
PY=${PYTHON:-$( [ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3 )}
have_torch=1
"$PY" -c 'import torch' 2>/dev/null || { have_torch=0; echo "note: $PY has no torch (apt-get install python3-torch): no PyTorch columns" >&2; }

# timed OUT cmd…: GNU time's wall/user/sys/maxrss into OUT.time.
timed() {
	local out=$1; shift
	/usr/bin/time -f '{"wall": %e, "user": %U, "sys": %S, "maxrss_kb": %M}' -o "$out.time" "$@"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, load $(cut -d' ' -f1-3 /proc/loadavg), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}" >&2
rows=()
for T in $SEQLENS; do
	for CT in $CORETYPES; do
		tag=$DIR/s$T-$CT
		# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE as the environment sets them, or both unset.
		core=(env)
		[ "$CT" = unset ] && core=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
		"$BIN" search --model "$MODEL" --mode global --calib "$MODEL/calib.txt" --calib-format lines \
			--seqlen "$T" --steps "$STEPS" --checkpoint-every 0 --out "$tag-run" --dry-run --json > "$tag.plan.json"
		echo "== search seqlen $T, coretype $CT" >&2
		timed "$tag.search" "${core[@]}" GOMAXPROCS="$THREADS" "$BIN" search --model "$MODEL" --mode global \
			--calib "$MODEL/calib.txt" --calib-format lines --seqlen "$T" --steps "$STEPS" --checkpoint-every 0 \
			--out "$tag-run" --force 2> "$tag.search.log" > /dev/null
		grep -E "per step|peak RSS" "$tag.search.log" >&2 || true
		echo "== eval seqlen $T, coretype $CT" >&2
		timed "$tag.eval" "${core[@]}" GOMAXPROCS="$THREADS" "$BIN" eval --model "$MODEL" --dataset lines \
			--text "$MODEL/eval.txt" --seqlen "$T" --limit "$EVAL_WINDOWS" --batch 1 --json > "$tag.eval.json" 2> /dev/null
		if [ $have_torch = 1 ]; then
			echo "== torch seqlen $T, coretype $CT" >&2
			"${core[@]}" OMP_WAIT_POLICY=PASSIVE "$PY" "$HERE/torch_search.py" --model "$MODEL" --seqlen "$T" \
				--steps "$STEPS" --threads "$THREADS" > "$tag.torch.json" 2> /dev/null
			"${core[@]}" OMP_WAIT_POLICY=PASSIVE "$PY" "$HERE/torch_search.py" --model "$MODEL" --seqlen "$T" \
				--steps "$EVAL_WINDOWS" --threads "$THREADS" --forward-only > "$tag.torchfwd.json" 2> /dev/null
		fi
		rows+=("$tag")
	done
done
python3 - "$STEPS" "$EVAL_WINDOWS" "${rows[@]}" <<'PY'
import json, os, sys
steps, evalw, tags = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
def load(p):
    return json.load(open(p)) if os.path.exists(p) and os.path.getsize(p) > 0 else None
print("| seqlen | OPENBLAS_CORETYPE | search wall s | user s | sys s | sys/user | peak RSS GiB | plan GiB | RSS/plan "
      "| s/step: fwd | bwd | metric | optim | z/Γ | thresh | other | torch f+b+AdamW wall s | search/torch "
      "| eval tok/s | torch fwd tok/s |")
print("|" + "---:|" * 20)
for tag in tags:
    t, ct = os.path.basename(tag)[1:].split("-", 1)
    s, plan = load(tag + ".search.time"), load(tag + ".plan.json")
    man = load(tag + "-run/gamma.json") or {}
    ph = (man.get("resources") or {}).get("phase_seconds_per_step", {})
    ev, ev_t = load(tag + ".eval.json"), load(tag + ".eval.time")
    tor, torf = load(tag + ".torch.json"), load(tag + ".torchfwd.json")
    rss = s["maxrss_kb"] * 1024 / 2**30
    pl = plan["bytes_total"] / 2**30
    tw = tor["load_seconds"] + tor["steps_seconds"] if tor else None
    # scored tokens: "tokens" in eval's JSON counts the whole text
    evtoks = ev["windows"] * ev["seqlen"] / ev["seconds"] if ev and ev.get("seconds") else None
    cells = [t, ct, f"{s['wall']:.1f}", f"{s['user']:.1f}", f"{s['sys']:.1f}", f"{s['sys']/max(s['user'],1e-9):.0%}",
             f"{rss:.2f}", f"{pl:.2f}", f"{rss/pl:.2f}"]
    cells += [f"{ph.get(k, float('nan')):.2f}" for k in ["forward", "backward", "metric", "optimizer", "z_gamma", "threshold", "other"]]
    cells += [f"{tw:.1f}" if tw else "–", f"{s['wall']/tw:.2f}" if tw else "–",
              f"{evtoks:.0f}" if evtoks else "–", f"{torf['tokens_per_second']:.0f}" if torf else "–"]
    print("| " + " | ".join(cells) + " |")
print(f"\n{steps} search steps (global mode, stochria) per run; torch = tools/bench/torch_search.py (load + steps, "
      f"no UniPruning parts); eval: {evalw} windows, batch 1.")
PY
