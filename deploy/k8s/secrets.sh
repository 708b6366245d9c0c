#!/usr/bin/env bash
# Makes the cluster's credentials with `unipruning creds` and prints one Secret per
# role (kubectl apply -f -): unipruning-creds-nats, -coordinator, -client and
# -s<i> for each shard, each holding only its role's files.
#   Usage: ./secrets.sh N [NAMESPACE] [CLUSTER] | kubectl apply -n NAMESPACE -f -
# The credentials directory (CA key included) is left in ./creds-<cluster>: keep it
# offline; rerunning refuses to overwrite it.
set -euo pipefail
n=${1:?usage: secrets.sh N [NAMESPACE] [CLUSTER]}
ns=${2:-default}
cluster=${3:-k8s}
bin=${UNIPRUNING:-unipruning}
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "secrets.sh: N must be a positive integer, got '$n'" >&2; exit 2; }
ids=$(seq -s, -f 's%g' 0 $((n - 1)))
hosts="nats,nats.$ns.svc,nats.$ns.svc.cluster.local,localhost,127.0.0.1"
for r in 0 1 2; do
	hosts+=",unipruning-coordinator-$r.unipruning-coordinator.$ns.svc.cluster.local"
done
out=creds-$cluster
"$bin" creds --out "$out" --cluster "$cluster" --shard-ids "$ids" --hosts "$hosts" >&2
secret() { # name files…
	local name=$1; shift
	local args=()
	for f in "$@"; do args+=(--from-file="$f=$out/$f"); done
	kubectl create secret generic "$name" --dry-run=client -o yaml "${args[@]}"
	echo '---'
}
secret unipruning-creds-nats roles.json nats-server.pem nats-server-key.pem
secret unipruning-creds-coordinator roles.json ca.pem coordinator.nk raft.pem raft-key.pem
secret unipruning-creds-client roles.json ca.pem client.nk
for ((i = 0; i < n; i++)); do
	secret "unipruning-creds-s$i" roles.json ca.pem "shard-s$i.nk"
done
