#!/usr/bin/env bash
# Starts a three-node raftsql cluster on this machine and waits for Ctrl-C.
#   node 1: PostgreSQL 127.0.0.1:5433, HTTP 127.0.0.1:8080, Raft 127.0.0.1:7000
#   node 2: PostgreSQL 127.0.0.1:5434, HTTP 127.0.0.1:8081, Raft 127.0.0.1:7001
#   node 3: PostgreSQL 127.0.0.1:5435, HTTP 127.0.0.1:8082, Raft 127.0.0.1:7002
# Data lives in ./cluster-data/nodeN; logs in ./cluster-data/nodeN.log.
set -euo pipefail
bin=${BIN:-bin}
dir=${CLUSTER_DIR:-cluster-data}
mkdir -p "$dir"
peers="1=127.0.0.1:7000,2=127.0.0.1:7001,3=127.0.0.1:7002"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for i in 1 2 3; do
  n=$((i - 1))
  "$bin/raftsqld" --id "$i" --data-dir "$dir/node$i" \
    --pg-addr "127.0.0.1:$((5433 + n))" --http-addr "127.0.0.1:$((8080 + n))" \
    --raft-addr "127.0.0.1:$((7000 + n))" --peers "$peers" >"$dir/node$i.log" 2>&1 &
  pids+=($!)
done
echo "three nodes started; connect with: psql -h 127.0.0.1 -p 5433 (or 5434, 5435)"
echo "status: curl -s 127.0.0.1:8080/status   logs: $dir/node*.log   stop: Ctrl-C"
wait
