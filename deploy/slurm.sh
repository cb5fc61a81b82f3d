#!/usr/bin/env bash
# A cmcl run as a Slurm job array: one array task per part of the shard plan.
#
#   cmcl plan --pipeline P --out OUT --num-shards 16     # once, on any node
#   sbatch --array=0-15 deploy/slurm.sh P OUT            # the workers
#   cmcl merge --pipeline P --out OUT                    # after every task succeeded
#
# OUT must be on a filesystem every node sees. A task that dies is rerun with
# `sbatch --array=I deploy/slurm.sh P OUT`: it keeps the shards it finished.
#SBATCH --job-name=cmcl-augment
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --output=cmcl-%A_%a.log
set -euo pipefail
pipeline=${1:?usage: sbatch --array=0-N-1 slurm.sh PIPELINE OUT}
out=${2:?usage: sbatch --array=0-N-1 slurm.sh PIPELINE OUT}
parts=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["parts"])' "$out/plan.json")
# cmcl reads the part from SLURM_ARRAY_TASK_ID.
exec cmcl augment --pipeline "$pipeline" --out "$out" --num-shards "$parts" \
    --threads "${SLURM_CPUS_PER_TASK:-1}" --no-progress
