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
scancel --user=root 2>/dev/null || true   # leftover jobs (their slurmstepd exit with them)
stop_pidfile /run/slurm/slurmd.pid
stop_pidfile /run/slurm/slurmctld.pid
stop_pidfile /run/slurm/slurmdbd.pid
stop_pidfile /run/mysqld/mysqld.pid
stop_pidfile /run/munge/munged.pid
