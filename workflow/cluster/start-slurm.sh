#!/usr/bin/env bash
# Bring up a single-node SLURM on this machine, from Debian's packages, in seconds: munge,
# slurmctld and slurmd started by hand (no systemd, no accounting database). For CI and for
# trying `snakemake --profile workflow/profiles/slurm` without a cluster; not for
# production. Needs root and `apt-get install slurmctld slurmd slurm-client munge`.
#
#   workflow/cluster/start-slurm.sh [STATE_DIR]    # default /tmp/spectnet-slurm
#   workflow/cluster/stop-slurm.sh  [STATE_DIR]    # stops exactly what this started
#
# Writes /etc/slurm/slurm.conf (refusing to replace one it did not write), keeps state,
# logs and pid files in STATE_DIR, and returns once the node accepts jobs. Running it
# again while the daemons are up does nothing.
set -euo pipefail

STATE_DIR=$(realpath -m "${1:-/tmp/spectnet-slurm}")
CONF=/etc/slurm/slurm.conf
MARKER="# written by spectnet workflow/cluster/start-slurm.sh"
NODE=spectnet-node

die() { echo "start-slurm: $*" >&2; exit 1; }
# A daemon is up when its pid file names a live, non-zombie process (killed daemons can
# linger as zombies here: PID 1 does not reap them).
alive() { [[ -s $1 ]] && [[ $(ps -o stat= -p "$(cat "$1")" 2>/dev/null) =~ ^[^Z] ]]; }

[[ $(id -u) == 0 ]] || die "must run as root"
for tool in munged slurmctld slurmd sinfo sbatch squeue; do
    command -v "$tool" >/dev/null \
        || die "$tool not found: apt-get install slurmctld slurmd slurm-client munge"
done

# munge: the key comes with the package (postinst); /run/munge does not exist without systemd.
if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --keyfile /etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
fi
install -d -o munge -g munge -m 0755 /run/munge
mkdir -p "$STATE_DIR"
if ! alive /run/munge/munged.pid; then
    runuser -u munge -- munged
    touch "$STATE_DIR/munged-started-here"      # stop-slurm.sh stops only what we started
fi
munge -n | unmunge >/dev/null || die "munge does not work (see /var/log/munge/munged.log)"

if grep -qsF "$MARKER" "$CONF" && scontrol ping 2>/dev/null | grep -q UP \
        && [[ $(sinfo -h -n "$NODE" -o %t 2>/dev/null) =~ ^(idle|mix|alloc)$ ]]; then
    echo "start-slurm: already running ($(grep -o 'StateSaveLocation=.*' "$CONF"))"
    exit 0
fi

# What the node really has: without RealMemory it registers with 1 MB and every --mem fails.
read -r CPUS MEMORY < <(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*RealMemory=\([0-9]*\).*/\1 \2/p')
[[ -n ${CPUS:-} && -n ${MEMORY:-} ]] || die "cannot read CPUs and memory from slurmd -C"

if [[ -e $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
    die "$CONF exists and was not written by this script; not replacing it"
fi
mkdir -p "$STATE_DIR/slurmctld" "$STATE_DIR/slurmd" "$(dirname "$CONF")"
cat > "$CONF" <<EOF
$MARKER
ClusterName=spectnet
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# No cgroups: none are delegated to us without systemd.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# No accounting database: sacct cannot work, job status comes from squeue.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
# Cores are the consumable; with memory one too (and no default) every job takes the node.
SelectTypeParameters=CR_Core
# A job asking for more than the node has fails at submission instead of pending forever.
EnforcePartLimits=ALL
MailProg=/bin/true
# Finished jobs stay visible to squeue for 10 minutes (the executor polls with squeue).
MinJobAge=600
ReturnToService=2
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldLogFile=$STATE_DIR/slurmctld.log
SlurmdLogFile=$STATE_DIR/slurmd.log
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEMORY State=UNKNOWN
PartitionName=main Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

slurmctld -c                 # -c: a clean start, no jobs left over from an earlier run
slurmd -N "$NODE"            # the node name is not this host's name
for _ in $(seq 100); do
    [[ $(sinfo -h -n "$NODE" -o %t 2>/dev/null) =~ ^(idle|mix|alloc)$ ]] && break
    sleep 0.2
done
state=$(sinfo -h -n "$NODE" -o %t 2>/dev/null || true)
[[ $state =~ ^(idle|mix|alloc)$ ]] \
    || die "node $NODE is '${state:-not registered}' (see $STATE_DIR/slurmctld.log, slurmd.log)"
echo "start-slurm: node $NODE up with $CPUS CPUs and $MEMORY MB, partition main (state in $STATE_DIR)"
