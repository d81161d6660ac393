#!/usr/bin/env bash
# Test-only: bring up a single-node SLURM 22.05 cluster on this host for tests/test_slurm.py.
# The project's copy of ../shared/slurm/cluster-up.sh (users never need it): it also runs
# apt-get update when the packages are missing, and starts with an empty job state.
# Debian 12, run as root, no systemd needed (daemons are started by hand).
#   FAKE_GPUS=N      (optional) advertise N fake GRES gpus, so rules with resources gpu=N
#                    can be submitted (sbatch --gpus=N); jobs get CUDA_VISIBLE_DEVICES=0..N-1
#   WITH_SLURMDBD=1  (optional) also run MariaDB + slurmdbd so that `sacct` works
#                    (the plugin's default status command); not needed with squeue status mode
set -euo pipefail
FAKE_GPUS="${FAKE_GPUS:-0}"
WITH_SLURMDBD="${WITH_SLURMDBD:-0}"

export DEBIAN_FRONTEND=noninteractive
PKGS="slurmctld slurmd slurm-client munge"
[ "$WITH_SLURMDBD" = 1 ] && PKGS="$PKGS slurmdbd mariadb-server"
# install only what is missing; a fresh machine has no package lists yet
missing=""
for p in $PKGS; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing
fi

# --- munge -------------------------------------------------------------------
# Debian's munge postinst already creates /etc/munge/munge.key; make one if absent.
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
runuser -u munge -- /usr/sbin/munged            # forks; PID in /run/munge/munged.pid
munge -n | unmunge >/dev/null                    # fails the script if munge is broken

# --- slurm.conf ----------------------------------------------------------------
NODE="$(hostname -s)"
NODE_LINE="$(slurmd -C | head -n1)"              # "NodeName=<host> CPUs=.. ... RealMemory=.."
install -d -m 0755 /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm

GRES_TYPES=""; NODE_GRES=""
rm -f /etc/slurm/gres.conf
if [ "$FAKE_GPUS" -gt 0 ]; then
  GRES_TYPES="GresTypes=gpu"
  NODE_GRES="Gres=gpu:${FAKE_GPUS}"
  if [ "$FAKE_GPUS" -eq 1 ]; then
    # gres/gpu drops devices without File=; any char device works, /dev/null for one GPU
    echo "NodeName=${NODE} Name=gpu File=/dev/null" > /etc/slurm/gres.conf
  else
    # several fake GPUs need distinct numbered char devices (NVIDIA major 195)
    for i in $(seq 0 $((FAKE_GPUS - 1))); do
      [ -e /run/slurm/fakegpu$i ] || mknod /run/slurm/fakegpu$i c 195 $i
    done
    echo "NodeName=${NODE} Name=gpu File=/run/slurm/fakegpu[0-$((FAKE_GPUS - 1))]" > /etc/slurm/gres.conf
  fi
fi

if [ "$WITH_SLURMDBD" = 1 ]; then
  ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux"
else
  ACCT="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi

cat > /etc/slurm/slurm.conf <<EOF
ClusterName=ci
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
${ACCT}
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
# keep finished jobs visible to 'squeue --states=all' for 5 min; the plugin's
# squeue status mode needs MinJobAge >= 3 x slurm-init-seconds-before-status-checks
MinJobAge=300
# a cancelled job step that ignores SIGTERM gets SIGKILL after this many seconds (default 30)
KillWait=5
${GRES_TYPES}
${NODE_LINE} ${NODE_GRES} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

# --- optional accounting: MariaDB + slurmdbd --------------------------------------
if [ "$WITH_SLURMDBD" = 1 ]; then
  install -d -o mysql -g mysql -m 0755 /run/mysqld
  # mariadbd stays in the foreground -> background it; it writes /run/mysqld/mysqld.pid
  nohup /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid \
        --socket=/run/mysqld/mysqld.sock --bind-address=127.0.0.1 \
        >/var/log/slurm/mariadb.log 2>&1 &
  for _ in $(seq 1 60); do mariadb-admin ping >/dev/null 2>&1 && break; sleep 0.5; done
  mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw';
              CREATE DATABASE IF NOT EXISTS slurm_acct_db;
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
  cat > /etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurmpw
EOF
  chmod 600 /etc/slurm/slurmdbd.conf            # slurmdbd refuses a world-readable file
  slurmdbd                                       # forks; PID in /run/slurm/slurmdbd.pid
  for _ in $(seq 1 60); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.5; done
  sacctmgr -i add cluster ci >/dev/null          # also creates account 'root' + user root
fi

# --- slurm daemons: both fork and write their PID files --------------------------
# -c: start with no jobs (the state dir keeps jobs of an earlier cluster otherwise)
slurmctld -c
slurmd

state=""
for _ in $(seq 1 60); do
  state="$(sinfo -h -N -o '%T' 2>/dev/null | head -n1 || true)"
  [ "$state" = "idle" ] && break
  sleep 1
done
if [ "$state" != "idle" ]; then
  echo "SLURM node not idle (state: '$state')" >&2
  scontrol show node >&2 || true
  tail -n 30 /var/log/slurm/*.log >&2
  exit 1
fi
sinfo
