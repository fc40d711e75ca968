#!/bin/bash
# Seeds 4-6 of the Table II comparison on this machine: the seed-1 commands Snakemake ran
# (from its log), seed changed, outputs under /work/more. Order: static-16, then control
# and learnable (both start from static-16's best.pt), then the evaluations.
set -euo pipefail
cd /work/main
export PATH=$PWD/.venv/bin:$PATH
for seed in "$@"; do
  for pattern in "train static-16 " "train static-16-control " "train learnable-16 " "evaluate "; do
    grep -F -- "$pattern" /work/more/seed1.cmds | while read -r cmd; do
      cmd=$(printf '%s' "$cmd" | sed -e "s/--seed 1 /--seed $seed /" -e "s#/seed1\([/ .]\)#/seed$seed\1#g" -e "s#-seed1\.log#-seed$seed.log#g" \
        -e "s# models/physionet2016/# /work/more/models/physionet2016/#g" -e "s# data/predictions/physionet2016/# /work/more/predictions/physionet2016/#g" \
        -e "s# results/physionet2016/runs/# /work/more/runs/#g" -e "s# logs/# /work/more/logs/#g")
      echo "[$(date +%T)] $cmd" | cut -c1-200
      eval "$cmd"
    done
  done
done
