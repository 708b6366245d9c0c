#!/usr/bin/env bash
# Prints shard.yaml for shard ids s0 … s(N-1): the headless Service, then one
# single-replica StatefulSet per id, each mounting only its own Secret
# unipruning-creds-<id>.   Usage: ./render-shards.sh N > shard.yaml
set -euo pipefail
n=${1:?usage: render-shards.sh N (the job shard count, spares included)}
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "render-shards.sh: N must be a positive integer, got '$n'" >&2; exit 2; }
dir=$(dirname "$0")
cat "$dir/shard.head.yaml"
for ((i = 0; i < n; i++)); do
	echo '---'
	sed "s/@ID@/s$i/g" "$dir/shard.tmpl.yaml"
done
