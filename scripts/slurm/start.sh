#!/usr/bin/env bash
# Start a private one-node SLURM cluster (munged + slurmctld + slurmd) for the tests and benchmarks.
#
#   scripts/slurm/start.sh [DIR]      # DIR defaults to /tmp/sea-tf-slurm
#   export SLURM_CONF=DIR/slurm.conf  # the last line printed; every sbatch/squeue/srun needs it
#   scripts/slurm/stop.sh [DIR]
#
# Everything the cluster writes (config, state, spool, logs, pid files, munge socket) lives in DIR,
# and the ports are free ones picked at start, so several clusters (one per test session) can run
# on the same machine without touching /etc/slurm or the system munged. The daemons run as root,
# as a container allows; jobs therefore run as root with the submitter's environment (sbatch's
# default --export=ALL), so the repository's venv on PATH reaches the job.
# Installs slurm-wlm + munge with apt-get when they are absent (root only). Exit status: 0 when the
# node is idle, 1 when something could not be installed or a daemon did not come up (the reason
# and the end of its log are printed).
set -euo pipefail

DIR=${1:-/tmp/sea-tf-slurm}
NODE_TIMEOUT_S=${SLURM_START_TIMEOUT_S:-30}

die() { echo "scripts/slurm/start.sh: $*" >&2; exit 1; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
   || ! command -v sbatch >/dev/null; then
  [ "$(id -u)" = 0 ] || die "slurm-wlm/munge are not installed and installing them needs root"
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge \
    || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge; }; } \
    >"${TMPDIR:-/tmp}/sea-tf-slurm-apt.log" 2>&1 \
    || die "apt-get install slurm-wlm munge failed (log: ${TMPDIR:-/tmp}/sea-tf-slurm-apt.log)"
fi
[ "$(id -u)" = 0 ] || die "the private cluster runs its daemons as root (SlurmUser=root); run as root"
[ -e /etc/munge/munge.key ] || die "/etc/munge/munge.key is missing (the munge package creates it)"

if [ -f "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; then
  die "a cluster is already running in $DIR (scripts/slurm/stop.sh $DIR stops it)"
fi
mkdir -p "$DIR"/{state,spool,log}
DIR=$(cd "$DIR" && pwd)

# munged refuses a socket directory that others can write, so it gets its own, owned by munge.
mkdir -p "$DIR/munge"
chown munge:munge "$DIR/munge"
chmod 0755 "$DIR/munge"
MUNGE_SOCKET="$DIR/munge/munge.socket"
su -s /bin/sh munge -c "/usr/sbin/munged --socket='$MUNGE_SOCKET' --pid-file='$DIR/munge/munged.pid' \
  --log-file='$DIR/munge/munged.log' --seed-file='$DIR/munge/munged.seed'" \
  || die "munged did not start: $(tail -n 5 "$DIR/munge/munged.log" 2>/dev/null)"
cp "$DIR/munge/munged.pid" "$DIR/munged.pid"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
CTLD_PORT=$(free_port)
SLURMD_PORT=$(free_port)
# Online CPUs: not `nproc`, which obeys OMP_NUM_THREADS (set to 1 by some test processes) and would
# leave a one-CPU node on which a two-task job waits forever.
CPUS=$(getconf _NPROCESSORS_ONLN)
# slurmd drains a node that reports less memory than configured: configure a little less than it has.
MEM_MB=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) * 9 / 10 ))

cat >"$DIR/slurm.conf" <<CONF
# Private one-node cluster written by scripts/slurm/start.sh; stop it with scripts/slurm/stop.sh $DIR
ClusterName=seatf
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
# finished jobs stay visible to scontrol for an hour (there is no accounting database to ask)
MinJobAge=3600
KillWait=5
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=localhost CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF

export SLURM_CONF="$DIR/slurm.conf"
/usr/sbin/slurmctld -f "$SLURM_CONF" || die "slurmctld did not start: $(tail -n 5 "$DIR/log/slurmctld.log" 2>/dev/null)"
/usr/sbin/slurmd -f "$SLURM_CONF" || die "slurmd did not start: $(tail -n 5 "$DIR/log/slurmd.log" 2>/dev/null)"

deadline=$(( $(date +%s) + NODE_TIMEOUT_S ))
until [ "$(sinfo -h -n localhost -o %t 2>/dev/null)" = "idle" ]; do
  if [ "$(date +%s)" -gt "$deadline" ]; then
    die "node not idle after ${NODE_TIMEOUT_S} s (sinfo: $(sinfo -h -o '%t %E' 2>&1)); slurmctld log: \
$(tail -n 5 "$DIR/log/slurmctld.log" 2>/dev/null); slurmd log: $(tail -n 5 "$DIR/log/slurmd.log" 2>/dev/null)"
  fi
  sleep 0.3
done
echo "SLURM_CONF=$SLURM_CONF"
