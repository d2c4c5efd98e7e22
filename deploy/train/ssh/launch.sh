#!/bin/bash
# Multi-node training over plain SSH: the same torchrun line on every host, one rank per GPU, c10d
# rendezvous on the first host. Run it from the checkout, on a machine that reaches every host by
# ssh without a password (deploy/train/README.md):
#   deploy/train/ssh/launch.sh jobs/my-train.toml gpu-node-1 gpu-node-2
# Host names must resolve from every host (the first one is the rendezvous address). Each host
# needs the checkout with its .venv at WINNOW_HOME, and the job file and the job's output_dir at
# the same paths: a shared filesystem. Environment: GPUS_PER_NODE (8), RDZV_PORT (29500),
# WINNOW_HOME (this directory), RDZV_ID (new for each launch).
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 JOB.toml HOST [HOST...]" >&2
    exit 2
fi
JOB=$1
shift
HOSTS=("$@")
GPUS=${GPUS_PER_NODE:-8}
PORT=${RDZV_PORT:-29500}
WINNOW=${WINNOW_HOME:-$PWD}
RDZV_ID=${RDZV_ID:-winnow-$(date +%s)-$$}

remote="cd $(printf %q "$WINNOW") && $(printf '%q ' .venv/bin/torchrun \
    "--nnodes=${#HOSTS[@]}" "--nproc_per_node=$GPUS" \
    --rdzv_backend=c10d "--rdzv_endpoint=${HOSTS[0]}:$PORT" "--rdzv_id=$RDZV_ID" \
    -m train "$JOB")"

pids=()
# Stopping this script stops the ssh sessions; with a terminal on the far side (-tt), their
# torchrun processes are hung up and stop their ranks.
trap 'kill "${pids[@]}" 2>/dev/null' INT TERM
for host in "${HOSTS[@]}"; do
    ssh -tt -o BatchMode=yes "$host" "$remote" < /dev/null &
    pids+=("$!")
done
status=0
for pid in "${pids[@]}"; do
    wait "$pid" || status=$?
done
exit "$status"
