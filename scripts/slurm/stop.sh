#!/usr/bin/env bash
# Stop the private cluster started by scripts/slurm/start.sh [DIR] (default /tmp/sea-tf-slurm):
# slurmd, slurmctld and munged, each by the pid in its pid file (never by name, so other clusters
# and the system's daemons are left alone). Running jobs are killed with the node. Idempotent.
set -uo pipefail

DIR=${1:-/tmp/sea-tf-slurm}

stop_pid_file() {
  local file=$1 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$file"
}

# Cancel this cluster's jobs first: slurmstepd and the job's processes outlive a stopped slurmd.
if [ -f "$DIR/slurm.conf" ] && [ -f "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; then
  export SLURM_CONF="$DIR/slurm.conf"
  timeout 10 scancel --user="$(id -un)" 2>/dev/null
  for _ in $(seq 50); do
    [ -z "$(timeout 5 squeue -h -t RUNNING,COMPLETING -o %i 2>/dev/null)" ] && break
    sleep 0.2
  done
fi

# slurmd next, then the controller, then authentication.
stop_pid_file "$DIR/slurmd.pid"
stop_pid_file "$DIR/slurmctld.pid"
stop_pid_file "$DIR/munged.pid"
rm -f "$DIR/munge/munged.pid"
