#!/usr/bin/env bash
# A cmcl run as N local (or ssh) workers with GNU parallel, then the merge.
#   deploy/parallel.sh PIPELINE OUT N
set -euo pipefail
pipeline=${1:?usage: parallel.sh PIPELINE OUT N}
out=${2:?usage: parallel.sh PIPELINE OUT N}
n=${3:?usage: parallel.sh PIPELINE OUT N}
cmcl plan --pipeline "$pipeline" --out "$out" --num-shards "$n"
seq 0 $((n - 1)) | parallel --halt now,fail=1 \
    cmcl augment --pipeline "$pipeline" --out "$out" --shard-index {} --num-shards "$n" --threads 1 --no-progress
cmcl merge --pipeline "$pipeline" --out "$out"
