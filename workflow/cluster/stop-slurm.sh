#!/usr/bin/env bash
# Stop the single-node SLURM that start-slurm.sh brought up: slurmd, slurmctld and (if
# start-slurm.sh started it) munged, each by the pid in its pid file, and wait until they
# are gone (or zombies: PID 1 here does not reap them). Removes the slurm.conf it wrote:
# while a slurm.conf names a controller that is down, every SLURM client call (and so
# every `snakemake` start, whose SLURM plugin asks `scontrol show config`) waits 10 s.
# Leaves STATE_DIR (logs) in place.
#
#   workflow/cluster/stop-slurm.sh [STATE_DIR]    # default /tmp/spectnet-slurm
set -euo pipefail

STATE_DIR=$(realpath -m "${1:-/tmp/spectnet-slurm}")

stop() {
    local pidfile=$1 pid
    [[ -s $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        [[ $(ps -o stat= -p "$pid" 2>/dev/null) =~ ^[^Z] ]] || return 0
        sleep 0.1
    done
    echo "stop-slurm: pid $pid ($pidfile) did not stop" >&2
    return 1
}

stop "$STATE_DIR/slurmd.pid"
stop "$STATE_DIR/slurmctld.pid"
if [[ -e $STATE_DIR/munged-started-here ]]; then
    stop /run/munge/munged.pid
    rm -f "$STATE_DIR/munged-started-here"
fi
if grep -qsF "# written by spectnet workflow/cluster/start-slurm.sh" /etc/slurm/slurm.conf; then
    rm -f /etc/slurm/slurm.conf
fi
echo "stop-slurm: stopped"
