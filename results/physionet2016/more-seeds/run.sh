#!/bin/bash
# More seeds of a learnable-N / static-N-control comparison outside the workflow: the seed-1
# commands Snakemake ran (CMDS, from its log) with the seed changed and every output under
# OUT. Order: trainings without --init (stage 1), those with --init, then the evaluations.
# usage: run.sh CMDS OUT SEED...
set -euo pipefail
cmds=$(realpath "$1") out=$2; shift 2
cd "$(dirname "$0")/../../.."  # the repository root: the commands' paths are relative to it
export PATH=$PWD/.venv/bin:$PATH
for seed in "$@"; do
  { grep " train " "$cmds" | grep -v -- "--init" || true; grep " train " "$cmds" | grep -- "--init" || true
    grep " evaluate " "$cmds" || true; } | while read -r cmd; do
    cmd=$(printf '%s' "$cmd" | sed -e "s/--seed 1 /--seed $seed /" -e "s#/seed1\([/ .]\)#/seed$seed\1#g" \
      -e "s#-seed1\.log#-seed$seed.log#g" -e "s# models/# $out/models/#g" -e "s# data/predictions/# $out/predictions/#g" \
      -e "s# results/\([a-z0-9]*\)/\([a-z0-9]*/\)\{0,1\}runs/# $out/runs/#g" -e "s# logs/# $out/logs/#g")
    echo "[$(date +%T)] $cmd" | cut -c1-200
    eval "$cmd"
  done
done
