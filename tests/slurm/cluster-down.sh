#!/usr/bin/env bash
# Test-only (tests/test_slurm.py): stop what cluster-up.sh started, by PID (from the
# daemons' own PID files). The project's copy of ../shared/slurm/cluster-down.sh.
set -u
stop_pidfile() {  # $1 = pidfile
  [ -s "$1" ] || return 0
  local pid; pid="$(cat "$1")"
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  echo "pid $pid ($1) still alive after 20 s, sending KILL" >&2
  kill -KILL "$pid" 2>/dev/null
}
# Leftover jobs first, while slurmd still runs: scancel only asks, and a job step that ignores
# SIGTERM is killed KillWait seconds later by slurmd; stopped too early, its processes would
# outlive the cluster. Then kill by PID whatever job process is still there.
if scontrol ping >/dev/null 2>&1; then
  squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null || true
  for _ in $(seq 1 90); do
    [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
    sleep 0.5
  done
  for pid in $(scontrol listpids 2>/dev/null | awk 'NR > 1 {print $1}'); do
    kill -KILL "$pid" 2>/dev/null
  done
fi
stop_pidfile /run/slurm/slurmd.pid
stop_pidfile /run/slurm/slurmctld.pid
stop_pidfile /run/slurm/slurmdbd.pid
stop_pidfile /run/mysqld/mysqld.pid
stop_pidfile /run/munge/munged.pid
