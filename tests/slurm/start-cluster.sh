#!/usr/bin/env bash
# Starts a one-node Slurm cluster on localhost for the tests: munged,
# slurmctld and slurmd with a generated slurm.conf under DIR (default
# /tmp/rtnode-slurm), and prints `export SLURM_CONF=...` for the caller to
# eval. Idempotent: a running cluster with the same DIR is reused.
#
# Debian's slurm-wlm 22.05 and munge (installed by tests/setup.sh). The
# settings are those a container without systemd or cgroups allows:
# ProctrackType=proctrack/linuxproc, TaskPlugin=task/none, no accounting.
set -euo pipefail
# The daemons run as root (SlurmUser=root), munged as munge.
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
DIR=${1:-/tmp/rtnode-slurm}
mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
CONF="$DIR/slurm.conf"
export SLURM_CONF="$CONF"

if [ -f "$CONF" ] && pgrep -x slurmctld >/dev/null && pgrep -x slurmd >/dev/null \
    && sinfo -h -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'; then
    echo "export SLURM_CONF=$CONF"
    exit 0
fi

# Eight CPUs whatever the machine has (SlurmdParameters=config_overrides):
# the tests' stage runs are short and mostly wait on disk, and a test
# needs several jobs running at once.
CPUS=8
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
cat > "$CONF" <<CONF
ClusterName=rtnode-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
MailProg=/bin/true
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerParameters=sched_interval=1,bf_interval=1
MinJobAge=60
NodeName=localhost CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF

# munge: a key, its socket folder, the daemon as the munge user.
if ! pgrep -x munged >/dev/null; then
    $sudo mkdir -p /run/munge /var/log/munge /var/lib/munge
    [ -s /etc/munge/munge.key ] || $sudo dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    $sudo chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
    $sudo chmod 0400 /etc/munge/munge.key
    $sudo runuser -u munge -- /usr/sbin/munged
fi

$sudo pkill -x slurmctld 2>/dev/null || true
$sudo pkill -x slurmd 2>/dev/null || true
sleep 0.5
$sudo slurmctld -c -f "$CONF"
$sudo slurmd -N localhost -f "$CONF"
for _ in $(seq 1 60); do
    if sinfo -h -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'; then
        echo "export SLURM_CONF=$CONF"
        exit 0
    fi
    sleep 0.5
done
echo "the one-node Slurm cluster did not come up; logs in $DIR/log" >&2
tail -20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
exit 1
